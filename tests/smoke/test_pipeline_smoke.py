"""End to end: `rlhf run` on the tiny profile in a fresh git repo; DVC, MLflow and Prefect checked."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.smoke.conftest import rlhf

pytestmark = pytest.mark.slow


def _runs(project: Path) -> list[dict]:
    """Every MLflow run of the project's store, with its tags, read straight from SQLite."""
    con = sqlite3.connect(project / "mlflow.db")
    try:
        rows = con.execute("SELECT run_uuid, name, status FROM runs ORDER BY start_time").fetchall()
        runs = []
        for run_id, name, status in rows:
            tags = dict(con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall())
            metrics = dict(con.execute("SELECT key, value FROM latest_metrics WHERE run_uuid = ?", (run_id,)).fetchall())
            runs.append({"id": run_id, "name": name, "status": status, "tags": tags, "metrics": metrics})
        return runs
    finally:
        con.close()


def test_first_run_writes_outputs_lock_and_runs(smoke_project: Path):
    p = smoke_project
    for path in ("data/prepared/ranklists/train.jsonl", "data/prepared/prompts.jsonl", "data/prepared/lm/train.txt",
                 "models/base/model.safetensors", "models/base/tokenizer.json", "metrics/prepare.json",
                 "metrics/base.json", "reports/base/samples.md", "reports/base/train_loss.csv"):
        assert (p / path).is_file(), path
    lock = yaml.safe_load((p / "dvc.lock").read_text())
    assert set(lock["stages"]) >= {"prepare", "base", "train_reward_model", "evaluate_reward_model"}
    assert json.loads((p / "metrics/base.json").read_text())["dev_perplexity"] > 1.0
    assert json.loads((p / "metrics/prepare.json").read_text())["ranklists"]["train"] == 60

    runs = _runs(p)
    parents = [r for r in runs if r["tags"].get("rlhf.kind") == "pipeline"]
    assert len(parents) == 1 and parents[0]["status"] == "FINISHED"
    children = {r["name"]: r for r in runs if r["tags"].get("mlflow.parentRunId") == parents[0]["id"]}
    assert set(children) == {"prepare", "base", "train_reward_model", "evaluate_reward_model"}
    for stage, run in children.items():
        assert run["status"] == "FINISHED"
        assert run["tags"]["rlhf.stage"] == stage
        assert len(run["tags"]["git.commit"]) == 40
    assert children["base"]["metrics"]["dev_perplexity"] > 1.0
    # Prefect ran offline with its home inside the project.
    assert (p / ".prefect").is_dir()
    assert "RLHF pipeline run" in (p / "first_run.log").read_text()


def test_unchanged_run_skips_and_param_change_reruns_only_base(smoke_project: Path):
    p = smoke_project
    base_mtime = (p / "models/base/model.safetensors").stat().st_mtime
    out = rlhf(p, "run").stdout
    assert "skipped" in out
    assert (p / "models/base/model.safetensors").stat().st_mtime == base_mtime

    params = yaml.safe_load((p / "params.yaml").read_text())
    params["base"]["steps"] = 5
    (p / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    prepare_lock = yaml.safe_load((p / "dvc.lock").read_text())["stages"]["prepare"]
    rlhf(p, "run")
    lock = yaml.safe_load((p / "dvc.lock").read_text())["stages"]
    assert lock["prepare"] == prepare_lock
    assert lock["base"]["params"]["params.yaml"]["base"]["steps"] == 5
    assert (p / "models/base/model.safetensors").stat().st_mtime != base_mtime
    runs = _runs(p)
    last_parent = [r for r in runs if r["tags"].get("rlhf.kind") == "pipeline"][-1]
    statuses = {r["name"]: r["tags"].get("rlhf.status", "ran") for r in runs
                if r["tags"].get("mlflow.parentRunId") == last_parent["id"]}
    assert statuses["prepare"] == "skipped" and statuses["base"] == "ran"
