"""The `label` and `labels export|import|stats` commands, called through argparse as `rlhf` calls them."""
from __future__ import annotations

import argparse
import json

import pytest
from starlette.testclient import TestClient

from labeler.cli import add_commands


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rlhf")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project directory (holds dvc.yaml) as the working directory."""
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def seed_labels(db, n=2):
    from labeler.store import LabelStore

    store = LabelStore(db)
    for i in range(n):
        task = store.create_task(f"ann{i % 2}", "这部电影很", [f"好{i}", f"差{i}", f"一般{i}"], prompt_source="pool",
                                 model="m", model_version="v", sampling={"seed": i})
        store.submit(task.id, f"ann{i % 2}", [[0], [2], [1]])
    return store


def test_flags_parse():
    args = parse("label", "--port", "9000", "--host", "0.0.0.0", "--db", "x.db", "--model", "registry:policy@3",
                 "--k", "5", "--overlap", "0.2", "--max-prompt-chars", "50", "--top-p", "0.9")
    assert (args.port, args.host, args.db, args.model, args.k, args.overlap) == (9000, "0.0.0.0", "x.db",
                                                                                  "registry:policy@3", 5, 0.2)
    assert args.func.__name__ == "cmd_label"
    assert parse("label").host == "127.0.0.1" and parse("label").model == "auto"
    for bad in (["--k", "1"], ["--k", "10"], ["--port", "0"], ["--overlap", "2"], ["--top-p", "0"]):
        with pytest.raises(SystemExit):
            parse("label", *bad)
    assert parse("labels", "import", "f.tsv", "--format", "published_tsv").func.__name__ == "cmd_import"
    with pytest.raises(SystemExit):
        parse("labels")


def test_export_import_and_stats_with_project_defaults(project, capsys):
    store = seed_labels(project / "data" / "labels.db", n=3)
    args = parse("labels", "export")
    assert args.func(args) == 0
    out = project / "data" / "labels" / "human.jsonl"
    assert "wrote 3 rank lists" in capsys.readouterr().out
    assert [json.loads(l)["tiers"][0] for l in out.read_text(encoding="utf-8").splitlines()] == [["好0"], ["好1"], ["好2"]]

    tsv = project / "published.tsv"
    tsv.write_text("最好\t次好\t最差\n重复\t重复\n", encoding="utf-8")
    args = parse("labels", "import", str(tsv))
    assert args.func(args) == 0
    assert "read 1, imported 1, rejected 1 (duplicate_text 1)" in capsys.readouterr().out
    assert len(store.labels()) == 4

    args = parse("labels", "stats", "--json")
    assert args.func(args) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["labels"]["accepted"] == 4 and stats["accepted_by_origin"] == {"app": 3, "import": 1}
    assert stats["labels_per_annotator"] == {"(none)": 1, "ann0": 2, "ann1": 1}
    assert stats["today"]["ann0"]["labels"] == 2
    args = parse("labels", "stats")
    assert args.func(args) == 0
    assert "4 accepted labels (3 from the app, 1 imported)" in capsys.readouterr().out


def test_import_of_a_missing_file_fails(project, capsys):
    args = parse("labels", "import", "nope.jsonl", "--db", str(project / "l.db"))
    assert args.func(args) == 1
    assert "not found" in capsys.readouterr().err


def test_export_without_labels(project, capsys):
    args = parse("labels", "export", "--db", str(project / "empty.db"), "--out", str(project / "o.jsonl"))
    assert args.func(args) == 0
    assert "nothing written" in capsys.readouterr().out and not (project / "o.jsonl").exists()


def test_label_builds_the_app_and_serves_it(project, monkeypatch, capsys):
    model_dir = project / "my-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")  # resolving needs no weights: the model loads on first use
    served = {}
    monkeypatch.setattr("uvicorn.run", lambda app, host, port, **kw: served.update(app=app, host=host, port=port))
    args = parse("label", "--model", "my-model", "--k", "3", "--port", "8123", "--db", str(project / "l.db"),
                 "--host", "0.0.0.0", "--allowed-host", "labels.lan")
    assert args.func(args) == 0
    assert (served["host"], served["port"]) == ("0.0.0.0", 8123)
    captured = capsys.readouterr()
    assert "no authentication" in captured.err and "published prompts" in captured.out
    with TestClient(served["app"], base_url="http://labels.lan:8123") as client:
        config = client.get("/api/config").json()
    assert config["k"] == 3 and config["model"] == "my-model" and len(config["model_version"]) == 12
    assert config["pool_size"] == 4
    assert (project / "l.db").exists()


def test_label_with_a_missing_model_says_so(project, capsys):
    args = parse("label", "--model", "base", "--db", str(project / "l.db"))
    assert args.func(args) == 2
    assert "not a model directory" in capsys.readouterr().err
