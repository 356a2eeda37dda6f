"""Tracking hygiene on the smoke project: stage runs carry dvc.lock's hashes; `rlhf compare` finds the lineage."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from rlhf_ops.lineage import stage_outs, stage_param_keys
from tests.smoke.conftest import rlhf

pytestmark = pytest.mark.slow
# the MLflow stage runs: train_policy is a foreach stage, one run per TRL algorithm
STAGES = ("prepare", "base", "train_reward_model", "evaluate_reward_model", "ppo", "train_policy@grpo",
          "train_policy@rloo", "train_policy@dpo", "evaluate_samples")


def _latest_stage_runs(project: Path) -> dict[str, dict]:
    """The newest MLflow run of each stage: its tags and params."""
    con = sqlite3.connect(project / "mlflow.db")
    try:
        out: dict[str, dict] = {}
        for run_id, name in con.execute("SELECT run_uuid, name FROM runs ORDER BY start_time"):
            tags = dict(con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall())
            if tags.get("rlhf.kind") == "stage":
                params = dict(con.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)).fetchall())
                out[name] = {"id": run_id, "tags": tags, "params": params}
        return out
    finally:
        con.close()


def _prefixed(tags: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tags.items() if k.startswith(prefix)}


def test_stage_runs_carry_git_versions_params_and_dvc_lock_hashes(smoke_project: Path):
    lock = yaml.safe_load((smoke_project / "dvc.lock").read_text())["stages"]
    runs = _latest_stage_runs(smoke_project)
    assert set(runs) == set(STAGES)
    for stage, run in runs.items():
        tags = run["tags"]
        assert len(tags["git.commit"]) == 40 and tags["git.dirty"] in ("true", "false")
        assert tags["torch.version"] and tags["transformers.version"]
        assert tags["dvc.stage"] == stage and tags["rlhf.data_hash"] and tags["rlhf.code_hash"]
        # The md5s computed in the stage process are the ones DVC wrote to dvc.lock.
        assert _prefixed(tags, "dvc.dep.") == {d["path"]: d["md5"] for d in lock[stage]["deps"]}, stage
        lock_outs = {o["path"]: o["md5"] for o in lock[stage].get("outs", [])}  # outs, metrics and plots
        outs = _prefixed(tags, "dvc.out.")
        assert set(outs) == set(stage_outs(smoke_project, stage)) and outs.items() <= lock_outs.items(), stage
        if "seed" in stage_param_keys(smoke_project, stage):  # skipped-stage records log dvc.yaml's params
            assert "seed" in run["params"], stage
    assert "ppo.lr" in runs["ppo"]["params"] and "reward_model.learning_rate" in runs["train_reward_model"]["params"]


def test_compare_finds_training_run_data_and_champion(smoke_project: Path):
    lock = yaml.safe_load((smoke_project / "dvc.lock").read_text())["stages"]
    rm = json.loads(rlhf(smoke_project, "compare", "reward-model", "--json").stdout)
    assert rm["champion"] is not None
    newest = rm["versions"][0]
    assert newest["registering_stage"] == "evaluate_reward_model"
    train = _latest_stage_runs(smoke_project)["train_reward_model"]
    assert newest["training_run_id"] != newest["run_id"]
    assert newest["params"]["reward_model.learning_rate"] == train["params"]["reward_model.learning_rate"]
    assert newest["data_deps"]["data/prepared/ranklists/train.jsonl"] == next(
        d["md5"] for d in lock["train_reward_model"]["deps"] if d["path"] == "data/prepared/ranklists/train.jsonl")
    assert "rlhf/reward" not in newest["data_deps"]  # code is not data
    assert newest["eval_data_hash"] == next(d["md5"] for d in lock["evaluate_reward_model"]["deps"]
                                            if d["path"] == "data/prepared/ranklists/test.jsonl")
    assert len(newest["git_commit"]) == 40 and newest["metrics"]["pairwise_accuracy"] is not None

    table = rlhf(smoke_project, "compare", "policy").stdout
    assert "policy:" in table and "champion" in table and "judge" in table and "KL" in table
