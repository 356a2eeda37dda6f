"""Terminal output of the CLI (rich tables)."""
from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.table import Table

from flows.summary import headline


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
    if ev:
        rows += [
            ("judge mean, base -> tuned", f"{_num(base.get('judge_score'))} -> {_num(tuned.get('judge_score'))}"),
            ("judge positive rate, base -> tuned",
             f"{_num(base.get('judge_positive_rate'))} -> {_num(tuned.get('judge_positive_rate'))}"),
            ("KL(tuned || base), nats/sample", _num(ev.get("kl"), ".2f")),
            ("distinct-2, base -> tuned", f"{_num(base.get('distinct_2'))} -> {_num(tuned.get('distinct_2'))}"),
            ("win rate of tuned over base", _num(ev.get("win_rate"))),
        ]
    return rows


def champion_rows() -> list[tuple[str, str]]:
    """Which registry versions are champions now (empty when the registry cannot be read)."""
    try:
        from tasks import registry
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
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    console.print(f"MLflow parent run [bold]{summary['parent_run_id']}[/bold]")
    console.print("Where to look:")
    console.print(f"  mlflow ui --backend-store-uri {uri}")
    console.print("  dvc metrics show    dvc plots show    reports/samples/samples.md")
    console.print("  Prefect: the 'rlhf-pipeline-summary' artifact (PREFECT_HOME=.prefect prefect artifact ls)")
