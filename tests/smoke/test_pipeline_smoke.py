"""End to end: `rlhf run` on the tiny profile in a fresh git repo; DVC, MLflow and Prefect checked."""
from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.smoke.conftest import child_env, rlhf

pytestmark = pytest.mark.slow
# the MLflow stage runs (and dvc.lock stages): train_policy is a foreach stage, one per TRL algorithm
STAGES = ("prepare", "base", "train_reward_model", "evaluate_reward_model", "ppo", "train_policy@grpo",
          "train_policy@rloo", "train_policy@dpo", "evaluate_samples")


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
                 "metrics/base.json", "reports/base/samples.md", "reports/base/train_loss.csv",
                 "models/reward_model/reward_stats.json", "models/policy/model.safetensors",
                 "reports/ppo/metrics.csv", "reports/samples/samples.md", "metrics/evaluate_samples.json"):
        assert (p / path).is_file(), path
    lock = yaml.safe_load((p / "dvc.lock").read_text())
    assert set(lock["stages"]) >= set(STAGES)
    assert json.loads((p / "metrics/base.json").read_text())["dev_perplexity"] > 1.0
    assert json.loads((p / "metrics/prepare.json").read_text())["ranklists"]["train"] == 60
    with (p / "reports/ppo/metrics.csv").open(encoding="utf-8") as f:
        curve = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in curve] == [1, 2, 3]  # ppo.iterations of the tiny profile
    assert all(0.0 <= float(r["objective/ngram_overlap"]) <= 1.0 for r in curve)
    # The yardsticks outside the models (issue 17): the linear baseline and the robustness set next to the
    # reward model, the fluency yardstick next to the judge.
    rm = json.loads((p / "metrics/evaluate_reward_model.json").read_text())
    assert rm["baseline"]["kind"] == "tfidf_logreg" and rm["baseline"]["n_lists"] == rm["n_lists"]
    for key in ("pairwise_accuracy", "exact_order_accuracy", "kendall_tau_b"):
        assert -1.0 <= rm["baseline"][key] <= 1.0
        assert key in rm["vs_baseline"]
    assert set(rm["robustness"]) == {"no_punctuation", "nfkc", "drop_chars", "first_chars", "prompt_prefix"}
    assert all({"model", "baseline"} <= set(entry) for entry in rm["robustness"].values())
    assert (p / "reports/reward_model/robustness.csv").is_file()
    yardstick = json.loads((p / "metrics/evaluate_samples.json").read_text())["yardstick"]
    assert yardstick["order"] == 4 and yardstick["n_fit_texts"] > 0
    for model in ("base", "tuned"):
        assert set(yardstick[model]) == {"perplexity", "real_perplexity", "ratio", "n_chars"}
        assert yardstick[model]["n_chars"] == 0 or yardstick[model]["real_perplexity"] > 1.0

    runs = _runs(p)
    parents = [r for r in runs if r["tags"].get("rlhf.kind") == "pipeline"]
    assert len(parents) == 1 and parents[0]["status"] == "FINISHED"
    children = {r["name"]: r for r in runs if r["tags"].get("mlflow.parentRunId") == parents[0]["id"]}
    assert set(children) == set(STAGES)
    for stage, run in children.items():
        assert run["status"] == "FINISHED"
        assert run["tags"]["rlhf.stage"] == stage
        assert len(run["tags"]["git.commit"]) == 40
    assert children["base"]["metrics"]["dev_perplexity"] > 1.0
    assert children["evaluate_reward_model"]["metrics"]["baseline.pairwise_accuracy"] == \
        pytest.approx(rm["baseline"]["pairwise_accuracy"])
    assert children["evaluate_reward_model"]["tags"]["rlhf.baseline.kind"] == "tfidf_logreg"
    # Prefect ran offline with its home inside the project.
    assert (p / ".prefect").is_dir()
    assert "RLHF pipeline run" in (p / "first_run.log").read_text()


def test_unchanged_run_skips_everything(smoke_project: Path):
    p = smoke_project
    base_mtime = (p / "models/base/model.safetensors").stat().st_mtime
    out = rlhf(p, "run").stdout
    assert out.count("skipped") >= len(STAGES)
    assert (p / "models/base/model.safetensors").stat().st_mtime == base_mtime
    assert statuses_of_last_run(p) == {stage: "skipped" for stage in STAGES}


def test_a_base_param_change_invalidates_base_not_prepare(smoke_project: Path):
    # DVC flags the stage whose params changed; downstream stages follow once its outputs change.
    p = smoke_project
    original = (p / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["base"]["steps"] += 1
    (p / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    try:
        proc = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=p, env=child_env(p),
                              capture_output=True, text=True, check=True)
    finally:
        (p / "params.yaml").write_text(original)
    changed = set(json.loads(proc.stdout))
    assert changed == {"base"}


def test_an_eval_param_change_reruns_only_evaluate_samples(smoke_project: Path):
    p = smoke_project
    params = yaml.safe_load((p / "params.yaml").read_text())
    params["eval"]["samples_per_prompt"] = 3
    (p / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    rlhf(p, "run")
    statuses = statuses_of_last_run(p)
    assert statuses.pop("evaluate_samples") == "ran"
    assert set(statuses.values()) == {"skipped"}
    lock = yaml.safe_load((p / "dvc.lock").read_text())["stages"]
    assert lock["evaluate_samples"]["params"]["params.yaml"]["eval"]["samples_per_prompt"] == 3
    assert json.loads((p / "metrics/evaluate_samples.json").read_text())["n_samples"] == 3 * 6


def statuses_of_last_run(p: Path) -> dict:
    runs = _runs(p)
    last_parent = [r for r in runs if r["tags"].get("rlhf.kind") == "pipeline"][-1]
    return {r["name"]: r["tags"].get("rlhf.status", "ran") for r in runs
            if r["tags"].get("mlflow.parentRunId") == last_parent["id"]}
