"""The HTTP API (Starlette TestClient): the labelling flow, validation, undo, skip, progress, escaping."""
from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from labeler.app import LabelerConfig, create_app
from labeler.generation import SamplingParams

POOL = ["这部电影很", "刚收到货，感觉"]
STATIC = Path(__file__).resolve().parents[2] / "labeler" / "static"


@pytest.fixture
def client(store, generator):
    config = LabelerConfig(sampling=SamplingParams(k=4), max_prompt_chars=20, model_name="fake", model_version="v0")
    with TestClient(create_app(store, generator, POOL, config, seed=0), base_url="http://localhost") as c:
        yield c


def new_task(client, annotator="alice", **extra):
    r = client.post("/api/tasks", json={"annotator": annotator, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def submit(client, task, tiers, annotator="alice"):
    return client.post("/api/labels", json={"annotator": annotator, "task_id": task["task_id"], "tiers": tiers})


def test_label_a_pool_prompt(client, store):
    config = client.get("/api/config").json()
    assert config["k"] == 4 and config["max_prompt_chars"] == 20 and config["model"] == "fake"
    task = new_task(client)
    assert task["prompt"] in POOL and task["prompt_source"] == "pool"
    assert [c["id"] for c in task["candidates"]] == [0, 1, 2, 3]
    assert all(c["text"].startswith(task["prompt"]) for c in task["candidates"])
    assert task["model"] == "fake" and task["model_version"] == "v0"
    assert isinstance(task["sampling"]["seed"], int) and task["sampling"]["max_new_tokens"] == 16
    r = submit(client, task, [[3], [0, 2], [1]])
    assert r.status_code == 201
    texts = [c["text"] for c in task["candidates"]]
    [label] = store.labels()
    assert label.tiers == [[texts[3]], [texts[0], texts[2]], [texts[1]]]
    assert label.annotator == "alice" and label.sampling["seed"] == task["sampling"]["seed"]
    assert r.json()["uid"] == label.uid
    assert store.rejections() == []


def test_the_next_pool_prompt_is_the_least_labelled(client):
    first = new_task(client)
    submit(client, first, [[0], [1], [2], [3]])
    second = new_task(client)
    assert second["prompt"] != first["prompt"]


def test_a_typed_prompt_and_seed_reproduce_the_candidates(client):
    a = new_task(client, prompt="  质量  很\n", seed=123)
    b = new_task(client, prompt="质量 很", seed="123")
    assert a["prompt"] == "质量 很" and a["prompt_source"] == "typed"  # whitespace normalised, as prepare does
    assert a["sampling"]["seed"] == 123 and a["candidates"] == b["candidates"]


@pytest.mark.parametrize("body, status, reason", [
    ({"annotator": ""}, 422, "empty_annotator"),
    ({"annotator": "   "}, 422, "empty_annotator"),
    ({}, 422, "empty_annotator"),
    ({"annotator": "x" * 65}, 422, "annotator_too_long"),
    ({"annotator": "alice", "prompt": "长" * 21}, 422, "prompt_too_long"),
    ({"annotator": "alice", "prompt": " \t "}, 422, "empty_prompt"),
    ({"annotator": "alice", "seed": -1}, 422, "invalid_seed"),
    ({"annotator": "alice", "seed": "abc"}, 422, "invalid_seed"),
])
def test_task_requests_are_validated_and_rejections_stored(client, store, body, status, reason):
    r = client.post("/api/tasks", json=body)
    assert r.status_code == status and r.json()["error"] == reason and r.json()["detail"]
    [rejected] = store.rejections()
    assert rejected["reason"] == reason and rejected["endpoint"] == "tasks"


def test_prompt_at_the_limit_is_accepted(client):
    assert new_task(client, prompt="长" * 20)["prompt"] == "长" * 20


@pytest.mark.parametrize("tiers, reason", [
    ([[0], [1], [2], [2, 3]], "duplicate_candidate"),   # a candidate in two tiers
    ([[0, 0], [1], [2], [3]], "duplicate_candidate"),   # twice in one tier
    ([[0], [1], [2]], "missing_candidates"),
    ([[0], [1], [2], [3, 7]], "unknown_candidate"),
    ([[0], [1], [2], [3, -1]], "unknown_candidate"),
    ([[0], [], [1, 2, 3]], "empty_tier"),
    ([[0, 1, 2, 3]], "single_tier"),
    ([["0"], [1], [2], [3]], "malformed_tiers"),
    ([[True], [1], [2], [3]], "malformed_tiers"),
    ("0 > 1", "malformed_tiers"),
    (None, "malformed_tiers"),
])
def test_rankings_are_validated(client, store, tiers, reason):
    task = new_task(client)
    r = submit(client, task, tiers)
    assert r.status_code == 422 and r.json()["error"] == reason
    [rejected] = store.rejections()
    assert (rejected["reason"], rejected["endpoint"], rejected["annotator"], rejected["task_id"]) == \
        (reason, "labels", "alice", task["task_id"])
    assert rejected["payload"] and store.labels(None) == []
    assert submit(client, task, [[0], [1], [2], [3]]).status_code == 201  # the task is still open


def test_task_ownership_and_state(client, store):
    task = new_task(client)
    assert submit(client, task, [[0], [1], [2], [3]], annotator="").json()["error"] == "empty_annotator"
    r = submit(client, task, [[0], [1], [2], [3]], annotator="mallory")
    assert (r.status_code, r.json()["error"]) == (403, "task_not_yours")
    assert submit(client, task, [[0], [1], [2], [3]]).status_code == 201
    r = submit(client, task, [[3], [2], [1], [0]])
    assert (r.status_code, r.json()["error"]) == (409, "task_closed")
    r = submit(client, {"task_id": "no-such-task"}, [[0], [1]])
    assert (r.status_code, r.json()["error"]) == (404, "unknown_task")
    assert [r["reason"] for r in store.rejections()] == ["unknown_task", "task_closed", "task_not_yours",
                                                         "empty_annotator"]
    assert len(store.labels()) == 1


def test_bodies_must_be_json_objects(client, store):
    r = client.post("/api/labels", content=b"annotator=alice", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_json")
    r = client.post("/api/labels", content=b"{oops", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_json")
    r = client.post("/api/labels", json=[1, 2])
    assert (r.status_code, r.json()["error"]) == (400, "invalid_json")
    assert len(store.rejections()) == 3


def test_skip_undo_and_progress(client, store):
    task = new_task(client)
    assert submit(client, task, [[0], [1, 2], [3]]).status_code == 201
    skipped = new_task(client)
    r = client.post(f"/api/tasks/{skipped['task_id']}/skip", json={"annotator": "alice"})
    assert r.status_code == 200 and r.json()["status"] == "skipped"
    assert submit(client, skipped, [[0], [1], [2], [3]]).json()["error"] == "task_closed"
    bob_task = new_task(client, annotator="bob")
    submit(client, bob_task, [[1], [0], [2], [3]], annotator="bob")

    progress = client.get("/api/progress", params={"annotator": "alice"}).json()
    assert progress["you"] == {"labels": 1, "skipped": 1}
    assert progress["annotators"] == {"alice": {"labels": 1, "skipped": 1}, "bob": {"labels": 1, "skipped": 0}}
    assert progress["team_labels"] == 2

    r = client.post("/api/undo", json={"annotator": "alice"})
    assert r.status_code == 200
    undone = r.json()
    assert undone["label"]["status"] == "undone" and undone["label"]["tiers"][1] == [
        task["candidates"][1]["text"], task["candidates"][2]["text"]]
    assert undone["task"]["task_id"] == task["task_id"] and undone["task"]["status"] == "open"
    assert client.get("/api/progress", params={"annotator": "alice"}).json()["you"]["labels"] == 0
    r = client.post("/api/undo", json={"annotator": "alice"})
    assert (r.status_code, r.json()["error"]) == (404, "nothing_to_undo")
    assert submit(client, task, [[3], [2], [1], [0]]).status_code == 201  # ranked again after undo
    assert [l.annotator for l in store.labels()] == ["bob", "alice"]


def test_overlap_serves_candidates_another_annotator_ranked(store, generator):
    config = LabelerConfig(sampling=SamplingParams(k=3), overlap=1.0)
    with TestClient(create_app(store, generator, POOL, config, seed=1), base_url="http://localhost") as client:
        task = new_task(client, "alice")
        submit(client, task, [[0], [1], [2]], "alice")
        repeat = new_task(client, "bob")
        assert repeat["prompt_source"] == "overlap" and repeat["prompt"] == task["prompt"]
        order = {c["text"]: c["id"] for c in repeat["candidates"]}
        alice = [c["text"] for c in task["candidates"]]
        submit(client, repeat, [[order[alice[0]]], [order[alice[2]]], [order[alice[1]]]], "bob")
        page = client.get("/dataset").text
    assert "pairwise agreement" in page
    # 3 pairs: ab agree, ac agree, bc disagree -> 0.667; tau (2 - 1) / 3
    assert "0.667" in page and "0.333" in page


MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_markup_is_stored_as_text_and_escaped_on_every_page(store):
    def markup_generator(prompt, sampling):
        return [f"{prompt}{MARKUP}{i}" for i in range(sampling.k)]

    config = LabelerConfig(sampling=SamplingParams(k=2), max_prompt_chars=200)
    with TestClient(create_app(store, markup_generator, POOL, config), base_url="http://localhost") as client:
        task = new_task(client, annotator="<b>eve</b>", prompt="<i>p</i>")
        assert task["candidates"][0]["text"] == f"<i>p</i>{MARKUP}0"  # JSON carries the raw text
        submit(client, task, [[0], [1]], annotator="<b>eve</b>")
        client.post("/api/labels", json={"annotator": "<script>bad()</script>", "task_id": "x", "tiers": [[0]]})
        page = client.get("/dataset")
    assert store.labels()[0].tiers[0] == [f"<i>p</i>{MARKUP}0"]
    html = page.text
    assert "<script" not in html and "<img" not in html and "<b>eve" not in html and "<i>p" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;b&gt;eve&lt;/b&gt;" in html and "&lt;script&gt;bad()" in html
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_pages_never_put_text_in_html():
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    assert re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", js) is None
    assert "textContent" in js
    index = (STATIC / "index.html").read_text(encoding="utf-8")
    assert re.search(r"<script(?![^>]*\bsrc=)", index) is None  # no inline script (the CSP forbids it anyway)
    assert "http://" not in index and "https://" not in index  # no CDN: everything is served here


def test_static_files_are_served(client):
    assert "Rank-list labeller" in client.get("/").text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200


def test_generation_failures_are_clear(store):
    def broken(prompt, sampling):
        raise FileNotFoundError("models/base does not exist")

    def repetitive(prompt, sampling):
        return [prompt + "好"] * sampling.k

    with TestClient(create_app(store, broken, POOL), base_url="http://localhost") as client:
        r = client.post("/api/tasks", json={"annotator": "alice"})
        assert r.status_code == 503 and r.json()["error"] == "generation_failed"
        assert "models/base" in r.json()["detail"]
    with TestClient(create_app(store, repetitive, POOL), base_url="http://localhost") as client:
        r = client.post("/api/tasks", json={"annotator": "alice"})
        assert r.status_code == 503 and r.json()["error"] == "too_few_candidates"


def test_generation_does_not_block_other_annotators(store, generator):
    started, release = threading.Event(), threading.Event()

    def slow(prompt, sampling):
        started.set()
        assert release.wait(10), "never released"
        return generator(prompt, sampling)

    app = create_app(store, slow, POOL)

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            generating = asyncio.create_task(client.post("/api/tasks", json={"annotator": "alice"}))
            while not started.is_set():
                await asyncio.sleep(0.01)
            # alice's generation is still running: bob is served meanwhile
            progress = await asyncio.wait_for(client.get("/api/progress", params={"annotator": "bob"}), 5)
            rejected = await asyncio.wait_for(client.post("/api/tasks", json={"annotator": ""}), 5)
            assert not generating.done()
            release.set()
            return progress, rejected, await asyncio.wait_for(generating, 10)

    progress, rejected, task = asyncio.run(scenario())
    assert progress.status_code == 200 and rejected.status_code == 422 and task.status_code == 201
