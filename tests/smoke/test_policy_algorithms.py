"""GRPO, RLOO and DPO beside PPO on the tiny profile: `policy.algorithms: [ppo, grpo, rloo, dpo]`, then
`rlhf run`: each trains (train_policy@<name>), writes its metrics, is evaluated by evaluate_samples
with the same judge and prompts, and is a `policy` version tagged with its algorithm that
`rlhf compare policy --json` lists. And the same through DVC (README's command): `dvc exp run -S
'policy.algorithms=[ppo,grpo,rloo,dpo]'` runs train_policy@grpo/rloo/dpo and evaluate_samples only."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.smoke.conftest import child_env, rlhf
from tests.smoke.ops_helpers import copy_smoke_project

pytestmark = [pytest.mark.slow, pytest.mark.extended]
TRL = ("grpo", "rloo", "dpo")
DVC = [sys.executable, "-m", "dvc"]
UNCHANGED = ("prepare", "base", "train_reward_model", "evaluate_reward_model", "ppo")  # not re-run by the experiment


def test_every_algorithm_trains_is_evaluated_and_registered(smoke_project: Path, tmp_path: Path):
    # the default (ppo only): the TRL stages wrote placeholders, no training
    for name in TRL:
        assert json.loads((smoke_project / "metrics" / f"{name}.json").read_text())["skipped"] is True
        assert (smoke_project / "models" / f"policy_{name}" / "SKIPPED").is_file()

    project = copy_smoke_project(smoke_project, tmp_path / "project")
    params = project / "params.yaml"
    values = yaml.safe_load(params.read_text(encoding="utf-8"))
    assert values["policy"]["algorithms"] == ["ppo"]
    values["policy"]["algorithms"] = ["ppo", *TRL]
    params.write_text(yaml.safe_dump(values, allow_unicode=True, sort_keys=False), encoding="utf-8")
    out = rlhf(project, "run").stdout

    for name in TRL:
        metrics = json.loads((project / "metrics" / f"{name}.json").read_text())
        assert metrics["skipped"] is False and metrics["algorithm"] == name, metrics
        assert metrics["steps"] >= 1 and metrics["registry"]["version"] >= 1
        assert (project / "models" / f"policy_{name}" / "config.json").is_file()
        assert name in out  # the run summary lists it
    assert json.loads((project / "metrics" / "dpo.json").read_text())["pair_source"] in ("rank_lists", "sampled")
    assert "rloo" in json.loads((project / "metrics" / "rloo.json").read_text())["algorithm"]
    ppo = json.loads((project / "metrics" / "ppo.json").read_text())

    evaluation = json.loads((project / "metrics" / "evaluate_samples.json").read_text())
    assert evaluation["algorithm"] == "ppo"  # the top-level figures stay PPO's
    assert set(evaluation["algorithms"]) == {"ppo", "grpo", "rloo", "dpo"}
    assert evaluation["algorithms"]["ppo"]["tuned"] == evaluation["tuned"]
    for name, figures in evaluation["algorithms"].items():
        assert figures["n_samples"] == evaluation["n_samples"], name  # same prompts and samples per prompt
        assert figures["promotion"]["version"] is not None, name
    for name in TRL:
        assert (project / "reports" / "samples" / "algorithms" / name / "samples.md").is_file()

    summary = json.loads(rlhf(project, "compare", "policy", "--json").stdout)
    by_algorithm: dict[str, list[str]] = {}
    for version in summary["versions"]:
        by_algorithm.setdefault(version["algorithm"], []).append(version["version"])
    assert set(by_algorithm) == {"ppo", "grpo", "rloo", "dpo"}, by_algorithm
    for name in TRL:
        assert len(by_algorithm[name]) == 1, by_algorithm
        assert str(json.loads((project / "metrics" / f"{name}.json").read_text())["registry"]["version"]) \
            == by_algorithm[name][0]
    assert str(ppo["registry"]["version"]) in by_algorithm["ppo"]
    table = rlhf(project, "compare", "policy").stdout
    assert "algorithm" in table and "grpo" in table


def _run(project: Path, *cmd: str, timeout: int = 900) -> str:
    proc = subprocess.run(list(cmd), cwd=project, env=child_env(project), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, \
        f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr


def _lock(project: Path) -> dict:
    return yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8"))["stages"]


def test_dvc_experiment_trains_every_algorithm_and_reruns_nothing_else(smoke_project: Path, tmp_path: Path):
    """~1 min on 2 cores: three TRL stages of the tiny profile and evaluate_samples, under dvc exp run."""
    project = copy_smoke_project(smoke_project, tmp_path / "project")
    _run(project, "git", "add", "-A")  # the first run's lock committed, as a user does before experimenting
    _run(project, "git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "baseline",
         "--allow-empty")
    before = _lock(project)
    ppo_metrics = (project / "metrics" / "ppo.json").read_bytes()

    out = _run(project, *DVC, "exp", "run", "-S", "policy.algorithms=[ppo,grpo,rloo,dpo]")
    for stage in UNCHANGED:
        assert f"Stage '{stage}' didn't change, skipping" in out, out[-3000:]
        assert f"Running stage '{stage}'" not in out
    for stage in [f"train_policy@{name}" for name in TRL] + ["evaluate_samples"]:
        assert f"Running stage '{stage}'" in out, out[-3000:]
    after = _lock(project)
    for stage in UNCHANGED:  # the same outputs (hashes in dvc.lock) as the first run's
        assert after[stage]["outs"] == before[stage]["outs"], stage
    assert (project / "metrics" / "ppo.json").read_bytes() == ppo_metrics

    for name in TRL:
        metrics = json.loads((project / "metrics" / f"{name}.json").read_text())
        assert metrics["skipped"] is False and metrics["algorithm"] == name, metrics
        assert metrics["steps"] >= 1 and metrics["registry"]["version"] >= 1
        assert (project / "models" / f"policy_{name}" / "config.json").is_file()
        assert not (project / "models" / f"policy_{name}" / "SKIPPED").exists()
        assert after[f"train_policy@{name}"]["outs"] != before[f"train_policy@{name}"]["outs"]
    evaluation = json.loads((project / "metrics" / "evaluate_samples.json").read_text())
    assert evaluation["algorithm"] == "ppo"
    assert set(evaluation["algorithms"]) == {"ppo", *TRL}
    for name, figures in evaluation["algorithms"].items():
        assert figures["n_samples"] == evaluation["n_samples"], name
        assert figures["promotion"]["version"] is not None, name
    assert yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))["policy"]["algorithms"] == \
        ["ppo", *TRL]
