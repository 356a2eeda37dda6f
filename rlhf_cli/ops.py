"""``rlhf schedule``, ``rlhf compare`` and ``rlhf promote``: running the pipeline as an operation."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

MODEL_NAMES = ("reward-model", "policy")
METRIC_NOTES = {
    "reward-model": "baseline: a linear TF-IDF character n-gram model fit on the same train split and scored on the same "
                    "test lists (metrics/evaluate_reward_model.json: baseline, robustness)",
    "policy": "yardstick: per-character perplexity of the tuned samples under a character n-gram LM of real test "
              "reviews, and its ratio to that of real reviews of the same lengths (~1 reads like a review)",
}


# --- schedule ------------------------------------------------------------------------------------
def cmd_schedule(args: argparse.Namespace) -> int:
    """Serve the pipeline on a cron schedule (or register it on a work pool) against a Prefect server."""
    from flows import schedule

    schedule.cron_schedule(args.cron, args.timezone)  # a bad cron string or timezone: ValueError, one line
    try:
        url = schedule.check_server()
    except schedule.ServerUnavailable as e:
        print(f"error: schedule: {e}", file=sys.stderr)
        return 1
    params = schedule.flow_parameters(args.stage, args.force, args.retries)
    full_name = f"{schedule.FLOW_NAME}/{args.name}"
    if args.pool:
        deployment_id = schedule.deploy(args.cron, pool=args.pool, name=args.name, timezone=args.timezone,
                                        parameters=params)
        print(f"deployment {full_name} ({deployment_id}) on work pool {args.pool!r}, cron {args.cron!r} "
              f"({args.timezone}), Prefect API {url}.\n"
              f"Runs start when a worker polls the pool; from this project's directory, with its environment:\n"
              f"    prefect worker start --pool {args.pool}\n"
              f"Run it now: prefect deployment run '{full_name}'")
        return 0
    print(f"serving deployment {full_name}: cron {args.cron!r} ({args.timezone}), Prefect API {url}.\n"
          f"Each run brings the DVC stages up to date (unchanged ones are skipped). Ctrl-C stops serving "
          f"and pauses the schedule.", flush=True)
    schedule.serve(args.cron, name=args.name, timezone=args.timezone, parameters=params, limit=1)
    return 0


# --- compare -------------------------------------------------------------------------------------
def _short(value: str | None, n: int = 8) -> str:
    return value[:n] if value else "-"


def _num(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:.4f}"


def _diff_cell(diff: dict[str, dict], is_champion: bool, limit: int) -> str:
    if is_champion:
        return "[dim](champion)[/dim]"
    if not diff:
        return "-"
    lines = [f"{k}={d['value'] if d['value'] is not None else '∅'} "
             f"[dim](champion {d['champion'] if d['champion'] is not None else '∅'})[/dim]"
             for k, d in list(diff.items())[:limit]]
    if len(diff) > limit:
        lines.append(f"[dim]… {len(diff) - limit} more (--all-params, --json)[/dim]")
    return "\n".join(lines)


def render_comparison(summary: dict, console: Console, *, param_limit: int = 6) -> None:
    """The versions of one registered model, newest first: one table, or one card a version when narrow.

    The table (a row a version, a column a field) is used when its natural width fits the
    console; otherwise (an 80-column terminal) each version is a two-column card of field and value,
    so no cell is cut to a few characters.
    """
    from rich.measure import Measurement

    from rlhf_ops.compare import METRICS

    name = summary["name"]
    title = (f"{name}: {len(summary['versions'])} version(s), champion "
             f"{'v' + summary['champion'] if summary['champion'] else 'none'}")
    metric_labels = [label for _key, label in METRICS[name]]
    policy = any(v.get("algorithm") for v in summary["versions"])  # the policy's versions carry an algorithm
    labels = ["version", "aliases", *(["algorithm"] if policy else []), *metric_labels, "params ≠ champion", "data",
              "eval data", "git commit", "run"]
    rows: list[tuple[list[str], str]] = []
    for v in summary["versions"]:
        is_champion = "champion" in v["aliases"]
        commit = _short(v["git_commit"]) + ("*" if v["git_dirty"] else "")
        run = _short(v["run_id"]) + (f"\n[dim]train {_short(v['training_run_id'])}[/dim]"
                                     if v["training_run_id"] and v["training_run_id"] != v["run_id"] else "")
        rows.append(([f"v{v['version']}", ", ".join(v["aliases"]) or "-",
                      *([v.get("algorithm") or "-"] if policy else []),
                      *[_num(v["metrics"].get(key)) for key, _ in METRICS[name]],
                      _diff_cell(v["params_diff"], is_champion, param_limit),
                      _short(v["data_hash"]) + (f"\n[dim]exp {v['dvc_exp_name']}[/dim]" if v["dvc_exp_name"] else ""),
                      _short(v["eval_data_hash"]), commit, run], "bold green" if is_champion else ""))

    table = Table(title=title, title_justify="left", show_lines=True)
    for label in labels:
        table.add_column(label, justify="right" if label == "version" or label in metric_labels else "left")
    for cells, style in rows:
        table.add_row(*cells, style=style)
    if Measurement.get(console, console.options.update_width(10_000), table).maximum <= console.width:
        console.print(table)
    else:  # narrow terminal: a card a version, values folded rather than cut
        console.print(title)
        for cells, style in rows:
            card = Table(title=cells[0], title_justify="left", title_style=style or None, show_header=False,
                         show_lines=False, style=style)
            card.add_column("field", style="dim", no_wrap=True)
            card.add_column("value", overflow="fold")
            for label, cell in zip(labels[1:], cells[1:]):
                card.add_row(label, cell)
            console.print(card)
    console.print("[dim]data: hash of the training run's data and model inputs (dvc.lock md5s, `--json` lists them); "
                  "eval data: md5 of the evaluation set; * = uncommitted changes[/dim]")
    console.print(f"[dim]{METRIC_NOTES[name]}[/dim]")


def cmd_compare(args: argparse.Namespace) -> int:
    """Print every version of a registered model: aliases, metrics, params vs champion, lineage."""
    import os

    from rlhf_ops.compare import summarize

    summary = summarize(args.name)
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    if not summary["versions"]:
        print(f"error: compare: no versions of {args.name!r} in the MLflow registry at "
              f"{os.environ.get('MLFLOW_TRACKING_URI')} (run the pipeline first: rlhf run)", file=sys.stderr)
        return 1
    render_comparison(summary, Console(), param_limit=10**6 if args.all_params else 6)
    return 0


# --- promote -------------------------------------------------------------------------------------
def cmd_promote(args: argparse.Namespace) -> int:
    """Move the ``champion`` alias to a version by hand (the previous champion is recorded)."""
    from rlhf_ops import registry

    version = str(args.version).lstrip("v")
    versions = [v.version for v in registry.all_versions(args.name)]
    if version not in versions:
        known = ", ".join(f"v{v}" for v in sorted(versions, key=int)) or "none"
        print(f"error: promote: {args.name!r} has no version {args.version!r} (versions: {known})", file=sys.stderr)
        return 1
    reason = args.reason or "promoted by hand (rlhf promote)"
    previous = registry.promote(args.name, version, reason=reason)
    was = f"v{previous.version}, now alias {registry.PREVIOUS!r}" if previous else "unchanged or none"
    print(f"{args.name}: champion is v{version} (previous champion: {was}); reason: {reason}")
    return 0


def add_commands(sub) -> None:
    """Register ``schedule``, ``compare`` and ``promote`` on the ``rlhf`` subcommand parser."""
    p = sub.add_parser("schedule", help="run the pipeline on a cron schedule (needs a Prefect server)",
                       description="Serve the pipeline flow as a Prefect deployment with a cron schedule until "
                                   "stopped, or with --pool register it on a work pool for workers to run. Needs a "
                                   "running Prefect server (prefect server start; export PREFECT_API_URL=...). Each "
                                   "run re-runs only the DVC stages whose inputs changed (e.g. new labels).")
    p.add_argument("--cron", required=True, help="5-field cron string, e.g. '0 3 * * *' (03:00 every day)")
    p.add_argument("--timezone", default="UTC", help="IANA timezone of the cron string (default UTC)")
    p.add_argument("--name", default="scheduled", help="deployment name (default: scheduled)")
    p.add_argument("--pool", help="register on this Prefect work pool and exit, instead of serving from here")
    p.add_argument("--stage", action="append", metavar="NAME", help="only this stage in each run (repeatable)")
    p.add_argument("--force", action="store_true", help="re-run stages even when DVC finds them up to date")
    p.add_argument("--retries", type=int, default=0, help="Prefect retries of a failed stage (default 0)")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("compare", help="every version of a registered model: aliases, metrics, params, lineage",
                       description="List every version of the reward model or the policy in the MLflow registry "
                                   "with its aliases, key metrics, the params that differ from the champion's, the "
                                   "data version (dvc.lock md5s of its inputs), git commit and run ids.")
    p.add_argument("name", choices=MODEL_NAMES)
    p.add_argument("--json", action="store_true", help="print JSON (every param and input hash) instead of a table")
    p.add_argument("--all-params", action="store_true", help="show every differing param in the table")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("promote", help="make a version the champion by hand",
                       description="Move the 'champion' alias of NAME to VERSION; the previous champion gets "
                                   "'previous-champion' and the reason is written on the version's tags.")
    p.add_argument("name", choices=MODEL_NAMES)
    p.add_argument("version", help="version number (e.g. 3 or v3)")
    p.add_argument("--reason", help="why (recorded as the version's rlhf.promotion.reason tag)")
    p.set_defaults(func=cmd_promote)
