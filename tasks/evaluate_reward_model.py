"""Stage ``evaluate_reward_model``: the RM on every test rank list; registry version and champion gate."""
from __future__ import annotations

import sys
from pathlib import Path

from rlhf.files import file_md5
from rlhf.params import Params
from tasks.stage import stage_main

STAGE = "evaluate_reward_model"
MODEL_DIR = Path("models/reward_model")
REPORT_DIR = Path("reports/reward_model")
TEST_LISTS = Path("data/prepared/ranklists/test.jsonl")
PREPARED = Path("data/prepared")  # the baseline fits on its train split
GATE_METRIC = "pairwise_accuracy"


def run(params: Params, root: Path = Path(".")) -> dict:
    """Evaluate, write plots and metrics, register the RM; promote it when it beats the champion."""
    from rlhf.data.ranklist import read_ranklists
    from rlhf.reward.baseline import fit_baseline
    from rlhf.reward.evaluate import evaluate_reward_model
    from rlhf.reward.model import load_reward_model
    from rlhf_ops import registry, tracking
    from rlhf_ops.plots import histogram_png, write_csv

    lists = read_ranklists(root / TEST_LISTS)
    data_hash = file_md5(root / TEST_LISTS)
    linear = fit_baseline(root / PREPARED)  # first: a missing train split fails before the RM is scored
    from rlhf.compute import resolve_device

    scorer = load_reward_model(root / MODEL_DIR, device=resolve_device(params.compute.device))
    result = evaluate_reward_model(scorer, lists)
    metrics = result["metrics"]
    reference = baseline_figures(scorer, metrics, linear, lists, params.data.published_prompts)

    report = root / REPORT_DIR
    write_csv(report / "by_list_length.csv", result["by_list_length"],
              ["k", "n_lists", "n_pairs", "pairwise_accuracy", "exact_order_accuracy", "kendall_tau_b"])
    write_csv(report / "test_scores.csv", result["per_text"], ["list_id", "tier", "n_tiers", "score", "truncated", "text"])
    best = [r["score"] for r in result["per_text"] if r["tier"] == 0]
    worst = [r["score"] for r in result["per_text"] if r["tier"] == r["n_tiers"] - 1]
    histogram_png(report / "score_histogram.png", {"best tier (positive)": best, "worst tier (negative)": worst},
                  title="Reward-model scores on the test rank lists", xlabel="raw RM score")
    write_csv(report / "robustness.csv", reference.pop("_robustness_rows"), reference.pop("_robustness_columns"))
    tracking.set_tags({"rlhf.baseline.kind": reference["baseline"]["kind"]})
    tracking.log_artifact(report, "reports")

    version, new = registry.register_model_dir(
        root / MODEL_DIR, registry.REWARD_MODEL,
        tags={"rlhf.eval.data_hash": data_hash, f"rlhf.eval.{GATE_METRIC}": metrics[GATE_METRIC]})
    gate = champion_gate(version, metrics[GATE_METRIC], data_hash, lists, device=str(scorer.device))
    return {**_rounded(metrics), **_rounded(reference),
            "registry": {"version": int(version.version), "new_version": new, **gate}}


def _rounded(data: dict) -> dict:
    return {k: (round(v, 5) if isinstance(v, float) else _rounded(v) if isinstance(v, dict) else v)
            for k, v in data.items()}


def baseline_figures(scorer, metrics: dict, linear, lists, prompts) -> dict:
    """The linear baseline (``linear``, :func:`rlhf.reward.baseline.fit_baseline`) next to the RM
    (``scorer``, whose figures on ``lists`` are ``metrics``): the baseline's figures on the same lists,
    the gap, and both models on the robustness set (``prompts``: the published prompts).

    Returns ``{"baseline": {kind, n_train_texts, ..., pairwise_accuracy, exact_order_accuracy,
    kendall_tau_b, ...}, "vs_baseline": {figure: RM - baseline}, "robustness": {perturbation: {n_lists,
    model: {...}, baseline: {...}}}}`` plus the robustness CSV's rows and columns under ``_robustness_*``.
    """
    from rlhf.reward.evaluate import evaluate_text_scorer
    from rlhf.reward.robustness import FIGURES, report_columns, report_rows, robustness_report

    about = linear.describe()
    about.pop("config")
    figures = {"model": metrics, "baseline": evaluate_text_scorer(linear, lists)}
    robustness = robustness_report({"model": scorer, "baseline": linear}, lists, list(prompts))
    print(f"evaluate_reward_model: baseline {linear.kind} pairwise {figures['baseline']['pairwise_accuracy']:.4f} "
          f"vs reward model {figures['model']['pairwise_accuracy']:.4f}; robustness: "
          + ", ".join(f"{name} {r['model']['pairwise_accuracy']:.3f}/{r['baseline']['pairwise_accuracy']:.3f}"
                      for name, r in robustness.items()))
    return {"baseline": {**about, **figures["baseline"]},
            "vs_baseline": {k: figures["model"][k] - figures["baseline"][k] for k in FIGURES},
            "robustness": robustness,
            "_robustness_rows": report_rows(robustness, ("model", "baseline"),
                                            original={"n_lists": figures["model"]["n_lists"], **figures}),
            "_robustness_columns": report_columns(("model", "baseline"))}


def champion_gate(version, score: float, data_hash: str, lists, device: str = "cpu") -> dict:
    """Promote ``version`` when its test pairwise accuracy beats the champion's on the same test set.

    A champion evaluated on another test set is re-evaluated on this one first.
    """
    from rlhf.reward.evaluate import evaluate_reward_model
    from rlhf.reward.model import load_reward_model
    from rlhf_ops import registry

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
        champ_scorer = load_reward_model(registry.download(champion), device=device)
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
