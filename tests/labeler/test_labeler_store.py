"""The labels database: tasks, submissions, skips, undo, text fidelity, and many concurrent writers."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from labeler.store import LabelStore
from labeler.validation import Rejection

PROJECT = Path(__file__).resolve().parents[2]
SAMPLING = {"seed": 7, "temperature": 0.9, "top_k": 50, "top_p": 0.95, "max_new_tokens": 16}
AWKWARD = ["tab\there", "two\nlines", "<script>alert('x')</script>", "quote \" and ' and \\ backslash", "中文，好！"]


def make_task(store: LabelStore, annotator: str = "alice", texts=None, prompt: str = "这部电影很"):
    return store.create_task(annotator, prompt, texts or ["A 好", "B 差", "C 一般", "D 还行"], prompt_source="pool",
                             model="models/base", model_version="abc123", sampling=SAMPLING)


def test_database_is_wal_and_every_table_exists(store):
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"tasks", "labels", "label_texts", "rejected"} <= tables
    LabelStore(store.path)  # opening an existing database again is harmless


def test_submit_stores_tiers_model_and_sampling(store):
    task = make_task(store)
    label = store.submit(task.id, "alice", [[2], [0, 3], [1]])
    [stored] = store.labels()
    assert stored.tiers == [["C 一般"], ["A 好", "D 还行"], ["B 差"]] == label.tiers
    assert (stored.prompt, stored.annotator, stored.model, stored.model_version) == ("这部电影很", "alice",
                                                                                      "models/base", "abc123")
    assert stored.sampling == SAMPLING and stored.status == "accepted" and stored.origin == "app"
    assert stored.created_at.endswith("+00:00") and stored.uid.startswith("human-")
    assert store.task(task.id).status == "submitted"


def test_texts_come_back_exactly(store):
    task = make_task(store, texts=AWKWARD, prompt="p\t<b>")
    store.submit(task.id, "alice", [[0, 1], [2], [3, 4]])
    [label] = store.labels()
    assert label.prompt == "p\t<b>"
    assert label.tiers == [AWKWARD[0:2], AWKWARD[2:3], AWKWARD[3:5]]


@pytest.mark.parametrize("who, status, reason", [("bob", None, "task_not_yours"), ("alice", "submitted", "task_closed"),
                                                  ("alice", "skipped", "task_closed")])
def test_a_task_is_submitted_once_by_its_annotator(store, who, status, reason):
    task = make_task(store)
    if status == "submitted":
        store.submit(task.id, "alice", [[0], [1, 2, 3]])
    elif status == "skipped":
        store.skip(task.id, "alice")
    with pytest.raises(Rejection) as err:
        store.submit(task.id, who, [[0], [1], [2], [3]])
    assert err.value.reason == reason
    assert len(store.labels()) == (1 if status == "submitted" else 0)


def test_unknown_task_and_bad_tiers_store_nothing(store):
    with pytest.raises(Rejection, match="no task") as err:
        store.submit("nope", "alice", [[0], [1]])
    assert err.value.reason == "unknown_task" and err.value.status == 404
    task = make_task(store)
    with pytest.raises(Rejection) as err:
        store.submit(task.id, "alice", [[0], [1]])
    assert err.value.reason == "missing_candidates"
    assert store.labels(None) == [] and store.task(task.id).status == "open"


def test_undo_walks_back_and_reopens_tasks(store):
    first, second = make_task(store), make_task(store, prompt="刚收到货，感觉")
    store.submit(first.id, "alice", [[0], [1], [2], [3]])
    store.submit(second.id, "alice", [[3], [2], [1], [0]])
    make_task(store, annotator="bob")
    label, task = store.undo_last("alice")
    assert label.prompt == "刚收到货，感觉" and label.status == "undone" and label.undone_at
    assert task.id == second.id and task.status == "open"
    label, task = store.undo_last("alice")
    assert task.id == first.id
    with pytest.raises(Rejection) as err:
        store.undo_last("alice")
    assert err.value.reason == "nothing_to_undo"
    assert store.labels() == [] and len(store.labels("undone")) == 2
    relabel = store.submit(first.id, "alice", [[1], [0, 2, 3]])  # a reopened task can be ranked again
    assert [l.uid for l in store.labels()] == [relabel.uid]


def test_progress_counts_labels_and_skips_since(store):
    for who in ("alice", "alice", "bob"):
        task = make_task(store, annotator=who)
        store.submit(task.id, who, [[0], [1], [2], [3]])
    store.skip(make_task(store, annotator="bob").id, "bob")
    assert store.progress("2000-01-01T00:00:00.000+00:00") == {"alice": {"labels": 2, "skipped": 0},
                                                               "bob": {"labels": 1, "skipped": 1}}
    assert store.progress("2999-01-01T00:00:00.000+00:00") == {}


def test_overlap_task_repeats_another_annotators_candidates(store):
    import random

    task = make_task(store)
    store.submit(task.id, "alice", [[0], [1], [2], [3]])
    assert store.overlap_task("alice", random.Random(0)) is None  # never your own
    repeat = store.overlap_task("bob", random.Random(0))
    assert repeat.prompt == task.prompt and sorted(repeat.candidates) == sorted(task.candidates)
    assert repeat.prompt_source == "overlap" and repeat.sampling == task.sampling
    assert store.overlap_task("bob", random.Random(0)) is None  # served once


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from labeler.store import LabelStore

    db, writer, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    store = LabelStore(db)
    while not go.exists():
        time.sleep(0.005)
    name = f"writer-{writer}"
    for i in range(100):
        texts = [f"w{writer} l{i} c{c}\\t<tab>\\nnew line «{writer}/{i}» '\\"" for c in range(4)]
        task = store.create_task(name, f"prompt {writer}/{i}\\n", texts, prompt_source="typed", model="m",
                                 model_version="v", sampling={"seed": writer * 1000 + i})
        store.submit(task.id, name, [[(i + c) % 4 for c in range(2)], [(i + 2) % 4], [(i + 3) % 4]])
""")


def test_eight_writer_processes_lose_and_interleave_nothing(tmp_path):
    db, go = tmp_path / "labels.db", tmp_path / "go"
    LabelStore(db)
    env = {**os.environ, "PYTHONPATH": str(PROJECT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(w), str(go)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(8)]
    time.sleep(0.5)
    go.touch()  # all start writing together
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    labels = LabelStore(db).labels()
    assert len(labels) == 800
    assert len({label.uid for label in labels}) == 800
    seen = set()
    for label in labels:
        writer, i = label.sampling["seed"] // 1000, label.sampling["seed"] % 1000
        texts = [f"w{writer} l{i} c{c}\t<tab>\nnew line «{writer}/{i}» '\"" for c in range(4)]
        expected = [sorted(texts[(i + c) % 4] for c in range(2)), [texts[(i + 2) % 4]], [texts[(i + 3) % 4]]]
        assert label.prompt == f"prompt {writer}/{i}\n"
        assert label.annotator == f"writer-{writer}"
        assert [sorted(t) for t in label.tiers] == expected
        seen.add((writer, i))
    assert seen == {(w, i) for w in range(8) for i in range(100)}
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM label_texts").fetchone()[0] == 3200
        assert conn.execute("SELECT COUNT(*) FROM tasks WHERE status = 'submitted'").fetchone()[0] == 800
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
