"""`rlhf compare` / `rlhf promote` on a small MLflow store built here (no models, no pipeline run)."""
from __future__ import annotations

import json

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402

from rlhf_cli.main import main  # noqa: E402
from rlhf_ops import registry  # noqa: E402
from rlhf_ops.compare import params_diff, summarize  # noqa: E402

RM_OUT, RM_TEST = "dvc.out.models/reward_model", "dvc.dep.data/prepared/ranklists/test.jsonl"


class Runs:
    """Stage-like runs with increasing start times (what the pipeline writes, minus the models)."""

    def __init__(self, client: MlflowClient, exp: str):
        self.client, self.exp, self.t = client, exp, 1_700_000_000_000

    def add(self, stage: str, *, parent: str | None = None, tags=None, params=None, metrics=None) -> str:
        self.t += 1000
        all_tags = {"mlflow.runName": stage, "rlhf.kind": "stage", "rlhf.stage": stage, **(tags or {})}
        if stage == "pipeline":
            all_tags.update({"rlhf.kind": "pipeline"})
            all_tags.pop("rlhf.stage")
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        run_id = self.client.create_run(self.exp, start_time=self.t, tags=all_tags, run_name=stage).info.run_id
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in (params or {}).items()],
                              metrics=[Metric(k, float(v), self.t, 0) for k, v in (metrics or {}).items()])
        self.client.set_terminated(run_id, end_time=self.t + 500)
        return run_id


def _register(client: MlflowClient, name: str, run_id: str, tags=None) -> str:
    try:
        client.create_registered_model(name)
    except mlflow.exceptions.MlflowException:
        pass
    mv = client.create_model_version(name, f"runs:/{run_id}/{name.replace('-', '_')}", run_id=run_id,
                                     tags={k: str(v) for k, v in (tags or {}).items()})
    client.set_registered_model_alias(name, registry.CHALLENGER, mv.version)
    return str(mv.version)


def _rm_store(client, exp) -> dict:
    runs, ids = Runs(client, exp), {}
    commit = "a" * 40
    # v1: the first pipeline run; lineage by the dvc.out / dvc.dep hash of models/reward_model.
    p1 = runs.add("pipeline")
    ids["t1"] = runs.add("train_reward_model", parent=p1, params={"seed": 0, "reward_model.learning_rate": 0.0001,
                                                                  "reward_model.epochs": 1},
                         tags={RM_OUT: "h1.dir", "rlhf.data_hash": "d1" * 16,
                               "dvc.dep.data/prepared/ranklists/train.jsonl": "tr1", "dvc.dep.rlhf/reward": "code.dir"})
    e1 = runs.add("evaluate_reward_model", parent=p1, params={"seed": 0},
                  tags={"dvc.dep.models/reward_model": "h1.dir", RM_TEST: "test1", "git.commit": commit,
                        "git.dirty": "false"},
                  metrics={"pairwise_accuracy": 0.8, "exact_order_accuracy": 0.5, "kendall_tau_b": 0.6,
                           "baseline.pairwise_accuracy": 0.75, "baseline.exact_order_accuracy": 0.45})
    ids["v1"] = _register(client, registry.REWARD_MODEL, e1, {"rlhf.eval.pairwise_accuracy": 0.8})
    registry.promote(registry.REWARD_MODEL, ids["v1"], reason="first version")
    # v2: another learning rate; a later pipeline's *skipped* record of train_reward_model carries the
    # same out hash but is not the training run.
    p2 = runs.add("pipeline")
    ids["t2"] = runs.add("train_reward_model", parent=p2, params={"seed": 0, "reward_model.learning_rate": 0.0003,
                                                                  "reward_model.epochs": 1},
                         tags={RM_OUT: "h2.dir", "rlhf.data_hash": "d2" * 16})
    e2 = runs.add("evaluate_reward_model", parent=p2, params={"seed": 0},
                  tags={"dvc.dep.models/reward_model": "h2.dir", RM_TEST: "test1", "git.commit": "b" * 40,
                        "git.dirty": "true"},
                  metrics={"pairwise_accuracy": 0.7, "exact_order_accuracy": 0.4, "kendall_tau_b": 0.5})
    p3 = runs.add("pipeline")
    runs.add("train_reward_model", parent=p3, tags={RM_OUT: "h2.dir", "rlhf.status": "skipped"},
             params={"seed": 0, "reward_model.learning_rate": 0.0003})
    ids["v2"] = _register(client, registry.REWARD_MODEL, e2, {"rlhf.eval.pairwise_accuracy": 0.7})
    # v3: runs without lineage tags (older code): found as the sibling under the same pipeline run.
    p4 = runs.add("pipeline")
    ids["t3"] = runs.add("train_reward_model", parent=p4, params={"seed": 0, "reward_model.learning_rate": 0.001},
                         tags={"dvc.exp_name": "exp-brisk-lark"})
    e3 = runs.add("evaluate_reward_model", parent=p4, params={"seed": 0}, tags={"git.commit": commit},
                  metrics={"pairwise_accuracy": 0.9})
    ids["v3"] = _register(client, registry.REWARD_MODEL, e3)
    return ids


def test_compare_reward_model_lineage_metrics_and_params_diff(store):
    client, exp = store
    ids = _rm_store(client, exp)
    summary = summarize(registry.REWARD_MODEL)
    assert summary["champion"] == ids["v1"] == "1"
    by_version = {v["version"]: v for v in summary["versions"]}
    assert [v["version"] for v in summary["versions"]] == ["3", "2", "1"]

    v1, v2, v3 = by_version["1"], by_version["2"], by_version["3"]
    assert v1["aliases"] == ["champion"] and v1["params_diff"] == {}
    assert v1["training_run_id"] == ids["t1"]
    assert v1["metrics"] == {"pairwise_accuracy": 0.8, "exact_order_accuracy": 0.5, "kendall_tau_b": 0.6,
                             "baseline.pairwise_accuracy": 0.75, "baseline.exact_order_accuracy": 0.45}
    assert v1["data_hash"] == "d1" * 16 and v1["eval_data_hash"] == "test1"
    assert v1["data_deps"] == {"data/prepared/ranklists/train.jsonl": "tr1"}  # code deps left out
    assert v1["git_commit"] == "a" * 40 and v1["git_dirty"] is False
    assert v1["promotion"]["reason"] == "first version"

    assert v2["aliases"] == [] and v2["training_run_id"] == ids["t2"]  # not the skipped record
    assert v2["params_diff"] == {"reward_model.learning_rate": {"value": "0.0003", "champion": "0.0001"}}
    assert v2["metrics"]["pairwise_accuracy"] == 0.7 and v2["git_dirty"] is True

    assert v3["aliases"] == ["challenger"] and v3["training_run_id"] == ids["t3"]
    assert v3["dvc_exp_name"] == "exp-brisk-lark"
    assert v3["params_diff"] == {"reward_model.learning_rate": {"value": "0.001", "champion": "0.0001"},
                                 "reward_model.epochs": {"value": None, "champion": "1"}}
    assert v3["metrics"]["exact_order_accuracy"] is None


def test_compare_cli_table_json_and_promote(store, capsys):
    client, exp = store
    ids = _rm_store(client, exp)

    assert main(["compare", "reward-model", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == summarize(registry.REWARD_MODEL)

    assert main(["compare", "reward-model", "--all-params"]) == 0
    out = capsys.readouterr().out
    for text in ("reward-model: 3 version(s), champion v1", "v2", "challenger", "champion",
                 "reward_model.learning_rate=0.0003", "0.7000", "d1d1d1d1", "aaaaaaaa", "bbbbbbbb*",
                 "0.7500", "baseline: a linear TF-IDF"):
        assert text in out, text

    assert main(["promote", "reward-model", "v2", "--reason", "better on fresh labels"]) == 0
    assert "champion is v2" in capsys.readouterr().out
    assert registry.by_alias(registry.REWARD_MODEL, registry.CHAMPION).version == ids["v2"]
    assert registry.by_alias(registry.REWARD_MODEL, registry.PREVIOUS).version == ids["v1"]
    tags = client.get_model_version(registry.REWARD_MODEL, ids["v2"]).tags
    assert tags["rlhf.promotion.reason"] == "better on fresh labels"
    assert tags["rlhf.promotion.previous_champion"] == ids["v1"]
    # The comparison follows the new champion.
    by_version = {v["version"]: v for v in summarize(registry.REWARD_MODEL)["versions"]}
    assert by_version["2"]["params_diff"] == {} and by_version["1"]["aliases"] == ["previous-champion"]

    assert main(["promote", "reward-model", "9"]) == 1
    assert "has no version '9' (versions: v1, v2, v3)" in capsys.readouterr().err


def test_compare_policy_reads_evaluation_tags(store, capsys):
    client, exp = store
    runs = Runs(client, exp)
    versions = []
    for lr, judge in ((3e-5, 0.61), (1e-4, 0.72)):
        parent = runs.add("pipeline")
        ppo = runs.add("ppo", parent=parent, params={"seed": 0, "ppo.lr": lr, "ppo.iterations": 3},
                       tags={"dvc.out.models/policy": f"p{lr}.dir", "rlhf.data_hash": f"{lr}"},
                       metrics={"final_score": 0.1})
        versions.append(_register(client, registry.POLICY, ppo, {"rlhf.eval.judge_score": judge, "rlhf.eval.kl": 1.5,
                                                                 "rlhf.eval.distinct_2": 0.8,
                                                                 "rlhf.eval.yardstick.tuned.perplexity": 90.0,
                                                                 "rlhf.eval.yardstick.tuned.ratio": 1.25}))
    registry.promote(registry.POLICY, versions[0], reason="first version")
    summary = summarize(registry.POLICY)
    v2 = summary["versions"][0]
    assert v2["metrics"] == {"judge_score": 0.72, "kl": 1.5, "distinct_2": 0.8, "yardstick.tuned.perplexity": 90.0,
                             "yardstick.tuned.ratio": 1.25}
    assert v2["params_diff"] == {"ppo.lr": {"value": "0.0001", "champion": "3e-05"}}
    assert v2["registering_stage"] == "ppo" and v2["training_run_id"] == v2["run_id"]
    assert main(["compare", "policy"]) == 0
    out = capsys.readouterr().out
    assert "judge score" in out and "0.7200" in out and "ppo.lr=0.0001" in out
    assert "1.2500" in out and "yardstick: per-character perplexity" in out


def test_compare_empty_registry_says_so(store, capsys):
    assert main(["compare", "policy"]) == 1
    assert "no versions of 'policy'" in capsys.readouterr().err
    assert main(["compare", "policy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"name": "policy", "champion": None, "versions": []}


def test_params_diff():
    assert params_diff({"a": "1", "b": "2"}, None) == {}
    assert params_diff({"a": "1", "b": "2"}, {"a": "1", "c": "3"}) == {
        "b": {"value": "2", "champion": None}, "c": {"value": None, "champion": "3"}}
