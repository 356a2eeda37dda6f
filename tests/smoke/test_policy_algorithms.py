"""GRPO, RLOO and DPO beside PPO on the tiny profile: `policy.algorithms: [ppo, grpo, rloo, dpo]`, then
`rlhf run`: each trains (train_policy@<name>), writes its metrics, is evaluated by evaluate_samples
with the same judge and prompts, and is a `policy` version tagged with its algorithm that
`rlhf compare policy --json` lists."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.smoke.conftest import rlhf
from tests.smoke.ops_helpers import copy_smoke_project

pytestmark = [pytest.mark.slow, pytest.mark.extended]
TRL = ("grpo", "rloo", "dpo")


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
