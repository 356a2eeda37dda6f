"""``rlhf``: one console script for the pipeline (``rlhf --help`` lists the commands)."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from rlhf_ops.environment import setup_environment


def cmd_run(args: argparse.Namespace) -> int:
    """Run the pipeline flow (Prefect) over the DVC stages; print the summary."""
    from rlhf_ops.environment import find_project_root
    from rlhf_ops.preflight import preflight

    # Before DVC can remove any output: params, --stage, inputs, tracking server, Prefect API, a copied store.
    # An unknown top-level params key would otherwise pass unnoticed (DVC finds every stage up to date).
    problems = preflight(find_project_root(), args.stage)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1

    from flows.pipeline import pipeline
    from rlhf_cli.render import print_run_summary

    state = pipeline(stages=args.stage or None, force=args.force, retries=args.retries, return_state=True)
    if not state.is_completed():  # a failed stage printed its error; the run ends with it, in one line
        print(f"\nerror: pipeline failed: {state.message}", file=sys.stderr)
        return 1
    print_run_summary(state.result())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlhf", description="RLHF pipeline: rank lists -> reward model -> PPO -> evaluation "
                                 "(DVC stages, Prefect flow, MLflow tracking).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="run the pipeline flow: every DVC stage that is not up to date",
                       description="Run the pipeline as a Prefect flow; each stage is `dvc repro --single-item "
                                   "<stage>`, so unchanged stages are skipped. Tracked in MLflow.")
    p.add_argument("--stage", action="append", metavar="NAME",
                   help="only this stage (repeatable; default: all stages of dvc.yaml in order)")
    p.add_argument("--force", action="store_true", help="re-run stages even when DVC finds them up to date")
    p.add_argument("--retries", type=int, default=0, help="Prefect retries of a failed stage (default 0)")
    p.set_defaults(func=cmd_run)

    from rlhf_cli import inference, ops

    inference.add_commands(sub)

    from labeler.cli import add_commands as add_labeler_commands

    add_labeler_commands(sub)
    ops.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    setup_environment()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:  # bad input or a missing model: the message says which
        print(f"error: {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
