"""Run summaries: the markdown published as a Prefect artifact and logged to MLflow."""
from __future__ import annotations

from typing import Any

# The figures worth a glance per stage (metric key -> label); the full set is in metrics/<stage>.json.
HEADLINE = {
    "prepare": {"texts.train": "train texts", "ranklists.train": "train lists", "ranklists.test": "test lists",
                "prompts.train": "train prompts"},
    "base": {"dev_perplexity": "dev perplexity", "train_seconds": "train s", "parameters": "parameters"},
    "train_reward_model": {"best_dev_pairwise_accuracy": "dev pairwise acc", "seconds_per_epoch": "s/epoch"},
    "evaluate_reward_model": {"pairwise_accuracy": "test pairwise acc", "exact_order_accuracy": "exact order",
                              "kendall_tau_b": "tau-b", "baseline.pairwise_accuracy": "linear baseline pairwise acc",
                              "baseline.exact_order_accuracy": "baseline exact order", "registry.version": "version",
                              "registry.decision": "registry"},
    "ppo": {"initial_score": "score first", "final_score": "score last", "final_kl": "KL last", "eps_median": "eps"},
    "evaluate_samples": {"base.judge_score": "judge base", "tuned.judge_score": "judge tuned", "kl": "KL",
                         "yardstick.tuned.ratio": "yardstick perplexity tuned/real",
                         "promotion.decision": "registry"},
}


def _get(metrics: dict, dotted: str) -> Any:
    value: Any = metrics
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# train_policy (one metrics file per algorithm): the figures worth a glance per algorithm
POLICY_HEADLINE = {"first_reward": "reward first", "final_reward": "reward last", "final_kl": "KL last",
                   "pair_source": "pairs from", "pairs": "pairs", "final_reward_accuracy": "pair accuracy last",
                   "registry.version": "version"}


def headline(stage: str, metrics: dict) -> list[tuple[str, str]]:
    """``(label, value)`` pairs of a stage's headline metrics that are present.

    ``train_policy``'s metrics are ``{algorithm: metrics}``: every algorithm is listed, ``skipped``
    for one not in ``policy.algorithms``. ``evaluate_samples`` adds each algorithm's judge mean.
    """
    if stage == "train_policy":
        out = []
        for algorithm, m in sorted(metrics.items()):
            if not isinstance(m, dict):
                continue
            if m.get("skipped"):
                out.append((algorithm, "skipped"))
                continue
            figures = [f"{label} {_fmt(v)}" for key, label in POLICY_HEADLINE.items()
                       if (v := _get(m, key)) is not None]
            out.append((algorithm, "; ".join(figures) or "ran"))
        return out
    out = []
    for key, label in HEADLINE.get(stage, {}).items():
        value = _get(metrics, key)
        if value is not None:
            out.append((label, _fmt(value)))
    if stage == "evaluate_samples":
        for algorithm, m in sorted((metrics.get("algorithms") or {}).items()):
            score = _get(m, "tuned.judge_score")
            out.append((f"judge {algorithm}", "-" if score is None else _fmt(score)))
    return out


def killed_runs_note(summary: dict) -> str | None:
    """What the run found of earlier runs left RUNNING by a killed process (None when it found none)."""
    n = summary.get("killed_runs_closed") or 0
    if not n:
        return None
    return (f"Found {n} MLflow run{'s' if n != 1 else ''} left RUNNING by a process that is gone (killed): "
            "marked KILLED (tag rlhf.ended_by).")


def render_markdown(summary: dict) -> str:
    """A markdown table: stage, status, seconds, headline metrics; then where to look."""
    lines = ["# RLHF pipeline run", "", f"MLflow parent run: `{summary['parent_run_id']}`", "",
             "| stage | status | seconds | headline |", "|---|---|---:|---|"]
    for r in summary["stages"]:
        figures = ", ".join(f"{k}: {v}" for k, v in headline(r["stage"], r["metrics"])) or "-"
        lines.append(f"| {r['stage']} | {r['status']} | {r['seconds']:.1f} | {figures} |")
    note = killed_runs_note(summary)
    if note:
        lines += ["", note]
    lines += ["", "Where to look: `mlflow ui --backend-store-uri sqlite:///$PWD/mlflow.db`, "
              "`dvc metrics show`, `dvc plots show`."]
    return "\n".join(lines) + "\n"
