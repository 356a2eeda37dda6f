"""Terminal output of the CLI (rich tables)."""
from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table

from flows.summary import headline


def print_run_summary(summary: dict, console: Console | None = None) -> None:
    """The stage table of a pipeline run and where to look next."""
    console = console or Console()
    table = Table(title="RLHF pipeline run", title_justify="left")
    for col in ("stage", "status", "seconds", "headline"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for r in summary["stages"]:
        figures = ", ".join(f"{k} {v}" for k, v in headline(r["stage"], r["metrics"])) or "-"
        style = {"skipped": "dim", "ran": "green"}.get(r["status"], "red")
        table.add_row(r["stage"], f"[{style}]{r['status']}[/{style}]", f"{r['seconds']:.1f}", figures)
    console.print(table)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    console.print(f"MLflow parent run [bold]{summary['parent_run_id']}[/bold]")
    console.print("Where to look:")
    console.print(f"  mlflow ui --backend-store-uri {uri}")
    console.print("  dvc metrics show    dvc plots show    (Prefect: the 'rlhf-pipeline-summary' artifact)")
