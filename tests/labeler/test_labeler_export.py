"""Export to the rank-list JSONL that prepare reads, and import of JSONL / published TSV files."""
from __future__ import annotations

import json

import pytest

from rlhf.data.errors import DataError, RejectCounter
from rlhf.data.readers import read_human_labels

from labeler.export import export_labels, import_labels

SAMPLING = {"seed": 1, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "max_new_tokens": 16}


def label(store, annotator, texts, tiers, prompt="这部电影很"):
    task = store.create_task(annotator, prompt, texts, prompt_source="pool", model="m", model_version="v",
                             sampling=SAMPLING)
    return store.submit(task.id, annotator, tiers)


def test_export_writes_canonical_lists_that_prepare_reads(store, tmp_path):
    first = label(store, "alice", ["好看", "难看", "一般"], [[0], [2], [1]])
    second = label(store, "bob", ["<b>x</b>", "y \" z", "w"], [[1, 2], [0]], prompt="说实话，真的很")
    undone = label(store, "bob", ["p", "q"], [[0], [1]])
    store.undo_last("bob")
    out = tmp_path / "data" / "labels" / "human.jsonl"
    result = export_labels(store.path, out)
    assert result.count == 2 and result.path == out
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == [
        {"id": first.uid, "prompt": "这部电影很", "tiers": [["好看"], ["一般"], ["难看"]], "source": "human",
         "annotator": "alice", "created_at": first.created_at},
        {"id": second.uid, "prompt": "说实话，真的很", "tiers": [["y \" z", "w"], ["<b>x</b>"]], "source": "human",
         "annotator": "bob", "created_at": second.created_at},
    ]
    assert undone.uid not in out.read_text(encoding="utf-8")
    # exactly what the prepare stage does with data/labels/
    lists, files = read_human_labels(out.parent, RejectCounter("raise"))
    assert files == 1 and [l.id for l in lists] == [first.uid, second.uid]
    assert all(l.source == "human" for l in lists)


def test_export_is_deterministic_and_atomic(store, tmp_path, monkeypatch):
    for i in range(5):
        label(store, f"a{i % 2}", [f"t{i}-0", f"t{i}-1"], [[1], [0]])
    out = tmp_path / "labels" / "human.jsonl"
    export_labels(store, out)
    first = out.read_bytes()
    export_labels(store, out)
    assert out.read_bytes() == first
    assert [p.name for p in out.parent.iterdir()] == ["human.jsonl"]  # no temporary file left behind
    created = [json.loads(line)["created_at"] for line in first.decode().splitlines()]
    assert created == sorted(created) and len(created) == 5

    label(store, "a0", ["new", "text"], [[0], [1]])

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("labeler.export.os.fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        export_labels(store, out)
    assert out.read_bytes() == first  # the previous export is untouched
    assert [p.name for p in out.parent.iterdir()] == ["human.jsonl"]


def test_export_without_labels_writes_nothing_and_removes_a_stale_file(store, tmp_path):
    out = tmp_path / "human.jsonl"
    assert export_labels(store, out).path is None and not out.exists()
    label(store, "alice", ["a", "b"], [[0], [1]])
    export_labels(store, out)
    store.undo_last("alice")
    result = export_labels(store, out)
    assert result.count == 0 and result.removed_stale and not out.exists()


def test_import_jsonl_counts_rejects_by_reason_and_is_idempotent(store, tmp_path):
    path = tmp_path / "lists.jsonl"
    lines = [
        {"id": "ok-1", "prompt": "刚收到货，感觉", "tiers": [["很好"], ["还行", "一般"], ["差"]], "annotator": "carol",
         "created_at": "2024-05-01T10:00:00Z"},
        {"id": "ok-2", "tiers": [["a\tb"], ["c"]]},
        {"id": "dup-text", "tiers": [["a"], ["a"]]},
        {"id": "one", "tiers": [["only"]]},
        {"id": "bad-time", "tiers": [["x"], ["y"]], "created_at": "yesterday"},
    ]
    path.write_text("\n".join(json.dumps(l, ensure_ascii=False) for l in lines) + "\n{not json\n", encoding="utf-8")
    result = import_labels(store, path)
    assert (result.format, result.read, result.imported) == ("ranklists", 3, 2)
    assert result.rejected == {"invalid_json": 1, "single_text": 1, "duplicate_text": 1, "invalid_created_at": 1}
    stored = {l.uid: l for l in store.labels()}
    assert stored["ok-1"].tiers == [["很好"], ["还行", "一般"], ["差"]]
    assert stored["ok-1"].created_at == "2024-05-01T10:00:00.000+00:00" and stored["ok-1"].annotator == "carol"
    assert stored["ok-2"].tiers == [["a b"], ["c"]]  # normalised as prepare normalises
    assert stored["ok-1"].origin == "import:lists.jsonl"
    again = import_labels(store, path)
    assert again.imported == 0 and again.rejected["already_imported"] == 2
    path.write_text(json.dumps({"id": "ok-1", "tiers": [["other"], ["texts"]]}) + "\n")
    assert import_labels(store, path).rejected == {"duplicate_id": 1}


def test_import_published_tsv(store, tmp_path):
    path = tmp_path / "published.tsv"
    path.write_text("最好\t次好\t一般\t最差\nsingle\n好\t好\n", encoding="utf-8")
    result = import_labels(store, path)
    assert (result.format, result.imported) == ("published_tsv", 1)
    assert result.rejected == {"single_text": 1, "duplicate_text": 1}
    [stored] = store.labels()
    assert stored.tiers == [["最好"], ["次好"], ["一般"], ["最差"]] and stored.annotator is None
    out = tmp_path / "out.jsonl"
    export_labels(store, out)
    assert json.loads(out.read_text(encoding="utf-8"))["annotator"] is None


def test_import_of_a_missing_or_empty_file_is_an_error(store, tmp_path):
    with pytest.raises(DataError, match="not found"):
        import_labels(store, tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty"):
        import_labels(store, tmp_path / "empty.jsonl")
