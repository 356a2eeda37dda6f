"""The training stages with `compute.processes: 2`: each stage command starts its own 2 CPU workers (gloo)
and ends with the metrics of the 1-process run of the same global batch."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.smoke.conftest import child_env

pytestmark = [pytest.mark.slow, pytest.mark.extended]


def stage(project: Path, name: str) -> subprocess.CompletedProcess:
    env = child_env(project)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'copy-mlflow.db'}"  # not the original's store
    proc = subprocess.run([sys.executable, "-m", f"tasks.{name}"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"tasks.{name} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc


def test_two_process_stages_match_one_process(smoke_project: Path, tmp_path: Path):
    one = {name: json.loads((smoke_project / "metrics" / f"{name}.json").read_text())
           for name in ("ppo", "train_reward_model")}
    project = tmp_path / "copy"
    shutil.copytree(smoke_project, project, ignore=shutil.ignore_patterns("mlflow.db*", "mlartifacts", ".prefect"))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["compute"]["processes"] = 2
    params["compute"]["main_process_port"] = 29571
    (project / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")

    # ppo first, against the same reward model as the 1-process run
    out = stage(project, "ppo").stdout
    assert "starting 2 processes" in out and "torchrun" in out
    two = json.loads((project / "metrics/ppo.json").read_text())
    for key in ("initial_score", "final_score", "initial_kl", "final_kl", "final_kl_coef", "final_num_eos"):
        assert two[key] == pytest.approx(one["ppo"][key], rel=1e-3, abs=1e-4), key
    assert (project / "models/policy/model.safetensors").is_file()

    stage(project, "train_reward_model")
    two = json.loads((project / "metrics/train_reward_model.json").read_text())
    for key in ("steps", "best_step", "best_dev_pairwise_accuracy", "best_dev_exact_order_accuracy"):
        assert two[key] == one["train_reward_model"][key], key
    for key in ("train_loss_final", "best_dev_loss", "reward_mean", "reward_std"):
        assert two[key] == pytest.approx(one["train_reward_model"][key], rel=1e-4, abs=1e-5), key
