"""Issue 18, case 7: the labelling app under hostile requests.

- DNS rebinding: a page on ``evil.example`` whose name resolves to 127.0.0.1 reaches the app with
  ``Host: evil.example:8765``; only the names the app is served under are accepted.
- A JSON body nested 30,000 deep (60 kB, under the size limit) must be a recorded 4xx rejection,
  not a 500 with a ``RecursionError``.
"""
from __future__ import annotations

import argparse

import pytest
from starlette.testclient import TestClient

from labeler.app import LabelerConfig, create_app
from labeler.generation import SamplingParams
from labeler.store import LabelStore


def candidates(prompt: str, sampling: SamplingParams) -> list[str]:
    return [f"{prompt}{i}{sampling.seed}" for i in range(sampling.k)]


@pytest.fixture
def store(tmp_path) -> LabelStore:
    return LabelStore(tmp_path / "labels.db")


def client_for(store, base_url="http://127.0.0.1:8765", **config) -> TestClient:
    app = create_app(store, candidates, ["这部电影很"], LabelerConfig(sampling=SamplingParams(k=3), **config), seed=0)
    return TestClient(app, base_url=base_url)


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "localhost"])
def test_local_names_are_served_by_default(store, host):
    with client_for(store) as client:
        r = client.get("/api/config", headers={"host": host})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("host", ["evil.example:8765", "evil.example", "192.168.1.5:8765", "testserver"])
def test_other_host_headers_are_refused(store, host):
    """DNS rebinding: the browser sends the attacker's name in Host; the app must not answer it."""
    with client_for(store) as client:
        for method, path, body in (("GET", "/api/config", None), ("GET", "/dataset", None),
                                   ("POST", "/api/tasks", {"annotator": "mallory"})):
            r = client.request(method, path, json=body, headers={"host": host})
            assert r.status_code == 400, (method, path, r.status_code)
    assert store.counts()["tasks"].get("open", 0) == 0


def test_named_hosts_are_served(store):
    with client_for(store, allowed_hosts=("labels.lan",)) as client:
        assert client.get("/api/config", headers={"host": "labels.lan:8765"}).status_code == 200
        assert client.get("/api/config", headers={"host": "evil.example"}).status_code == 400


def test_deeply_nested_json_is_a_recorded_rejection(store):
    body = b"[" * 30_000 + b"]" * 30_000
    with client_for(store) as client:
        r = client.post("/api/labels", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_json" and "nest" in r.json()["detail"]
        nested_object = ('{"annotator": "a", "tiers": ' + "[" * 200 + "]" * 200 + "}").encode()
        r = client.post("/api/labels", content=nested_object, headers={"content-type": "application/json"})
        assert r.status_code == 400 and "nest" in r.json()["detail"]
        # a string holding brackets is not nesting
        r = client.post("/api/tasks", json={"annotator": "a", "prompt": "[{\"" * 100})
        assert r.status_code == 422 and r.json()["error"] == "prompt_too_long"
    rejected = store.rejections()
    assert [row["reason"] for row in rejected] == ["prompt_too_long", "invalid_json", "invalid_json"]
    assert rejected[-1]["endpoint"] == "labels" and rejected[-1]["payload"].startswith("[[[")


def parse_label(*argv: str) -> argparse.Namespace:
    from labeler.cli import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(["label", *argv])


@pytest.mark.parametrize("argv, expected", [
    ((), {"localhost", "127.0.0.1", "::1", "[::1]"}),
    (("--host", "192.168.1.5"), {"localhost", "127.0.0.1", "::1", "[::1]", "192.168.1.5"}),
    (("--host", "::1"), {"localhost", "127.0.0.1", "::1", "[::1]"}),
    (("--host", "0.0.0.0", "--allowed-host", "labels.lan", "--allowed-host", "10.0.0.7"),
     {"localhost", "127.0.0.1", "::1", "[::1]", "labels.lan", "10.0.0.7"}),
])
def test_label_command_allows_the_hosts_it_serves(argv, expected):
    from labeler.cli import allowed_hosts

    assert set(allowed_hosts(parse_label(*argv))) == expected


def test_label_on_all_interfaces_needs_host_names(tmp_path, monkeypatch, capsys):
    """--host 0.0.0.0 without --allowed-host: say which names to give, start nothing."""
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("the server must not start"))
    args = parse_label("--host", "0.0.0.0", "--model", "m", "--db", str(tmp_path / "l.db"))
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "--allowed-host" in err and "0.0.0.0" in err
