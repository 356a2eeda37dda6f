"""Stage ``evaluate_reward_model``: the RM on every test rank list; registry version and champion gate."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from rlhf.params import Params
from tasks.stage import stage_main

STAGE = "evaluate_reward_model"
MODEL_DIR = Path("models/reward_model")
REPORT_DIR = Path("reports/reward_model")
TEST_LISTS = Path("data/prepared/ranklists/test.jsonl")
GATE_METRIC = "pairwise_accuracy"


def file_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def run(params: Params, root: Path = Path(".")) -> dict:
    """Evaluate, write plots and metrics, register the RM; promote it when it beats the champion."""
    from rlhf.data import read_ranklists
    from rlhf.reward.evaluate import evaluate_reward_model
    from rlhf.reward.model import load_reward_model
    from tasks import registry, tracking
    from tasks.plots import histogram_png, write_csv

    lists = read_ranklists(root / TEST_LISTS)
    data_hash = file_md5(root / TEST_LISTS)
    scorer = load_reward_model(root / MODEL_DIR)
    result = evaluate_reward_model(scorer, lists)
    metrics = result["metrics"]

    report = root / REPORT_DIR
    write_csv(report / "by_list_length.csv", result["by_list_length"],
              ["k", "n_lists", "n_pairs", "pairwise_accuracy", "exact_order_accuracy", "kendall_tau_b"])
    write_csv(report / "test_scores.csv", result["per_text"], ["list_id", "tier", "n_tiers", "score", "truncated", "text"])
    best = [r["score"] for r in result["per_text"] if r["tier"] == 0]
    worst = [r["score"] for r in result["per_text"] if r["tier"] == r["n_tiers"] - 1]
    histogram_png(report / "score_histogram.png", {"best tier (positive)": best, "worst tier (negative)": worst},
                  title="Reward-model scores on the test rank lists", xlabel="raw RM score")
    tracking.log_artifact(report, "reports")

    version, new = registry.register_model_dir(
        root / MODEL_DIR, registry.REWARD_MODEL,
        tags={"rlhf.eval.data_hash": data_hash, f"rlhf.eval.{GATE_METRIC}": metrics[GATE_METRIC]})
    gate = champion_gate(version, metrics[GATE_METRIC], data_hash, lists)
    return {**{k: (round(v, 5) if isinstance(v, float) else v) for k, v in metrics.items()},
            "registry": {"version": int(version.version), "new_version": new, **gate}}


def champion_gate(version, score: float, data_hash: str, lists) -> dict:
    """Promote ``version`` when its test pairwise accuracy beats the champion's on the same test set.

    A champion evaluated on another test set is re-evaluated on this one first.
    """
    from rlhf.reward.evaluate import evaluate_reward_model
    from rlhf.reward.model import load_reward_model
    from tasks import registry

    name = registry.REWARD_MODEL
    registry.set_version_tags(name, version.version, {"rlhf.eval.data_hash": data_hash, f"rlhf.eval.{GATE_METRIC}": score})
    champion = registry.by_alias(name, registry.CHAMPION)
    if champion is None:
        registry.promote(name, version.version, reason="first version")
        return {"promoted": True, "champion_version": int(version.version), "champion_score": score,
                "previous_champion_score": None, "decision": "first version becomes champion"}
    if champion.version == version.version:
        return {"promoted": False, "champion_version": int(champion.version), "champion_score": score,
                "previous_champion_score": score, "decision": "already champion"}
    champ_score = champion.tags.get(f"rlhf.eval.{GATE_METRIC}")
    if champion.tags.get("rlhf.eval.data_hash") != data_hash or champ_score is None:
        champ_scorer = load_reward_model(registry.download(champion))
        champ_score = evaluate_reward_model(champ_scorer, lists, include_texts=False)["metrics"][GATE_METRIC]
        registry.set_version_tags(name, champion.version, {"rlhf.eval.data_hash": data_hash,
                                                           f"rlhf.eval.{GATE_METRIC}": champ_score})
    champ_score = float(champ_score)
    if score > champ_score:
        registry.promote(name, version.version,
                         reason=f"test {GATE_METRIC} {score:.4f} > champion v{champion.version}'s {champ_score:.4f}")
        return {"promoted": True, "champion_version": int(version.version), "champion_score": score,
                "previous_champion_score": champ_score,
                "decision": f"v{version.version} beats v{champion.version} ({score:.4f} > {champ_score:.4f})"}
    return {"promoted": False, "champion_version": int(champion.version), "champion_score": champ_score,
            "previous_champion_score": champ_score,
            "decision": f"v{version.version} does not beat v{champion.version} ({score:.4f} <= {champ_score:.4f})"}


if __name__ == "__main__":
    sys.exit(stage_main(STAGE, run, sections=()))
