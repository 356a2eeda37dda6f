"""Terminal output of the CLI (rich tables)."""
from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.table import Table

from flows.summary import headline, killed_runs_note


def _stage_metrics(summary: dict, stage: str) -> dict:
    for r in summary["stages"]:
        if r["stage"] == stage:
            return r["metrics"] or {}
    return {}


def _num(value: Any, fmt: str = ".3f") -> str:
    return "-" if not isinstance(value, (int, float)) else format(value, fmt)


def outcome_rows(summary: dict) -> list[tuple[str, str]]:
    """The figures a user checks after a run: RM accuracy, judge base -> tuned, KL, diversity."""
    rm = _stage_metrics(summary, "evaluate_reward_model")
    ev = _stage_metrics(summary, "evaluate_samples")
    base, tuned = ev.get("base", {}), ev.get("tuned", {})
    rows = []
    if rm:
        rows.append(("reward model: test pairwise accuracy", f"{_num(rm.get('pairwise_accuracy'))} "
                     f"(exact order {_num(rm.get('exact_order_accuracy'))})"))
        rows += baseline_rows(rm)
    if ev:
        rows += [
            ("judge mean, base -> tuned", f"{_num(base.get('judge_score'))} -> {_num(tuned.get('judge_score'))}"),
            ("judge positive rate, base -> tuned",
             f"{_num(base.get('judge_positive_rate'))} -> {_num(tuned.get('judge_positive_rate'))}"),
            ("KL(tuned || base), nats/sample", _num(ev.get("kl"), ".2f")),
            ("distinct-2, base -> tuned", f"{_num(base.get('distinct_2'))} -> {_num(tuned.get('distinct_2'))}"),
            ("win rate of tuned over base", _num(ev.get("win_rate"))),
        ]
        algorithms = ev.get("algorithms") or {}
        if len(algorithms) > 1 or set(algorithms) - {"ppo"}:
            rows.append(("judge mean / KL / distinct-2 by algorithm", "; ".join(
                f"{name} {_num((m.get('tuned') or {}).get('judge_score'))} / {_num(m.get('kl'), '.2f')} / "
                f"{_num((m.get('tuned') or {}).get('distinct_2'))} ({(m.get('promotion') or {}).get('decision', '-')})"
                for name, m in algorithms.items())))
        rows += yardstick_rows(ev.get("yardstick") or {})
    return rows


def baseline_rows(rm: dict) -> list[tuple[str, str]]:
    """The linear baseline next to the reward model, and both on the robustness set (evaluate_reward_model)."""
    base = rm.get("baseline") or {}
    if not base:
        return []
    gap = (rm.get("vs_baseline") or {}).get("pairwise_accuracy")
    rows = [(f"linear baseline ({base.get('kind', '?')}): test pairwise accuracy",
             f"{_num(base.get('pairwise_accuracy'))} (exact order {_num(base.get('exact_order_accuracy'))}); "
             f"reward model {'-' if gap is None else format(gap, '+.3f')} over it")]
    robustness = rm.get("robustness") or {}
    if robustness:
        cells = [f"{name} {_num(r.get('model', {}).get('pairwise_accuracy'))}/"
                 f"{_num(r.get('baseline', {}).get('pairwise_accuracy'))}" for name, r in robustness.items()]
        rows.append(("robustness: pairwise accuracy, reward model / baseline", ", ".join(cells)))
    return rows


def yardstick_rows(yardstick: dict) -> list[tuple[str, str]]:
    """Per-character perplexity under the real-review character n-gram LM (evaluate_samples)."""
    base, tuned = yardstick.get("base") or {}, yardstick.get("tuned") or {}
    if not tuned:
        return []
    return [(f"fluency yardstick: char {yardstick.get('order', '?')}-gram perplexity, base -> tuned",
             f"{_num(base.get('perplexity'), '.1f')} -> {_num(tuned.get('perplexity'), '.1f')} (real reviews "
             f"{_num(tuned.get('real_perplexity'), '.1f')}; ratio {_num(base.get('ratio'), '.2f')} -> "
             f"{_num(tuned.get('ratio'), '.2f')})")]


def champion_rows() -> list[tuple[str, str]]:
    """Which registry versions are champions now (empty when the registry cannot be read)."""
    try:
        from rlhf_ops import registry
    except Exception:  # tracking extras missing: nothing to show
        return []
    rows = []
    for name in (registry.REWARD_MODEL, registry.POLICY):
        try:
            champ, chall = registry.by_alias(name, registry.CHAMPION), registry.by_alias(name, registry.CHALLENGER)
        except Exception:
            continue
        if champ or chall:
            rows.append((f"{name}: champion / challenger",
                         f"v{champ.version if champ else '-'} / v{chall.version if chall else '-'}"))
    return rows


def print_run_summary(summary: dict, console: Console | None = None, *, registry_rows: bool = True) -> None:
    """The stage table of a pipeline run, the outcome, the champions and where to look next."""
    console = console or Console()
    table = Table(title="RLHF pipeline run", title_justify="left")
    for col in ("stage", "status", "seconds", "headline"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for r in summary["stages"]:
        figures = ", ".join(f"{k} {v}" for k, v in headline(r["stage"], r["metrics"])) or "-"
        style = {"skipped": "dim", "ran": "green"}.get(r["status"], "red")
        table.add_row(r["stage"], f"[{style}]{r['status']}[/{style}]", f"{r['seconds']:.1f}", figures)
    console.print(table)
    rows = outcome_rows(summary) + (champion_rows() if registry_rows else [])
    if rows:
        outcome = Table(title="Outcome", title_justify="left", show_header=False)
        outcome.add_column("what")
        outcome.add_column("value")
        for what, value in rows:
            outcome.add_row(what, value)
        console.print(outcome)
    note = killed_runs_note(summary)
    if note:
        console.print(note)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    console.print(f"MLflow parent run [bold]{summary['parent_run_id']}[/bold]")
    console.print("Where to look:")
    console.print(f"  mlflow ui --backend-store-uri {uri}")
    console.print("  dvc metrics show    dvc plots show    reports/samples/samples.md")
    console.print("  Prefect: the 'rlhf-pipeline-summary' artifact (PREFECT_HOME=.prefect prefect artifact ls)")
