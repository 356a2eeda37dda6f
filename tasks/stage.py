"""What every stage entry point shares: environment, params, the MLflow run, the metrics file."""
from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from rlhf_ops.environment import setup_environment
from rlhf_ops.preflight import preflight

# Errors a user can fix from the message alone: printed as one line, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as pretty, key-sorted JSON (stable diffs for ``dvc metrics diff``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def apply_threads(params: Any, sections: Sequence[str]) -> int:
    """Set torch's CPU threads to the stage section's ``threads`` (the first of ``sections`` that has one).

    The one place the ``threads`` params take effect: library code never sets threads. Returns the
    value applied; 0 leaves torch's default alone.
    """
    threads = stage_threads(params, sections)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return threads


def stage_main(stage: str, run: Callable[..., dict], sections: Sequence[str],
               argv: Sequence[str] | None = None, *, item: tuple[str, Sequence[str]] | None = None) -> int:
    """Entry point of ``python -m tasks.<stage>`` (what ``dvc.yaml`` calls).

    First the pre-flight (:func:`rlhf_ops.preflight.preflight`: params, the stage's input files, the
    tracking server, a copied MLflow store), one ``error:`` line per problem and exit status 1. Then
    loads ``params.yaml``, opens the stage's MLflow run (nested under the flow's run when the
    flow started this process), calls ``run(params, root)``, writes ``metrics/<stage>.json`` and
    logs the metrics. A bad param or bad input exits with status 1 and a one-line message (and,
    under plain ``dvc repro``, a note that ``dvc checkout <stage>`` restores the removed outputs).

    When ``compute`` asks for several processes for this stage (or names an accelerate config),
    this process only starts them (``torchrun`` / ``accelerate launch`` of the same command, see
    :func:`rlhf.compute.launch_command`) and returns their exit status; in the workers, rank 0
    does what one process does and the others only train (no MLflow run, no files).

    ``item``: for a ``foreach`` stage of ``dvc.yaml`` (``cmd: sh tasks/run.sh <stage> --<option> ${item}``),
    ``("--<option>", choices)``: the command takes that option; ``run(params, root, value)`` is called
    with its value, the metrics go to ``metrics/<value>.json``, the MLflow run is named
    ``<stage>@<value>`` (DVC's name of the item) and the params section named ``value``, when there
    is one, is logged beside ``sections``.
    """
    parser = argparse.ArgumentParser(prog=f"python -m tasks.{stage}", description=f"Run the {stage} stage.")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if item is not None:
        parser.add_argument(item[0], required=True, choices=list(item[1]), dest="item")
    args = parser.parse_args(argv)
    value = getattr(args, "item", None)
    run_name, metrics_name = (stage, stage) if value is None else (f"{stage}@{value}", value)
    if value is not None:
        run = functools.partial(run, item=value)
    root = setup_environment()

    from rlhf.compute import in_launched_worker, launch_command
    from rlhf.config import ConfigError, to_dict
    from rlhf.params import load_params

    if not in_launched_worker():  # the launching process checked for its workers
        problems = preflight(root, [stage], params_file=args.params, prefect=False, made_on_the_way=False)
        if problems:
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            _restore_hint(stage)
            return 1
    try:
        params = load_params(root / args.params)
    except ConfigError as e:
        print(f"error: {args.params}: {e}", file=sys.stderr)
        return 1

    if params.compute.launches(stage) and not in_launched_worker():
        try:
            cmd, env = launch_command(params.compute, stage, [f"tasks.{stage}", "--params", args.params,
                                                              *([item[0], value] if value is not None else [])],
                                      root=root,
                                      stage_threads=stage_threads(params, sections))
        except ConfigError as e:
            print(f"error: {args.params}: {e}", file=sys.stderr)
            return 1
        print(f"{stage}: starting {params.compute.processes_for(stage)} processes: {' '.join(cmd)}", flush=True)
        return subprocess.call(cmd, env={**os.environ, **env}, cwd=root)

    apply_threads(params, sections)
    if in_launched_worker() and int(os.environ.get("RANK", "0")) != 0:
        return _secondary_worker(stage, run, params, root)

    from rlhf_ops import tracking

    logged_sections = (*sections, *([value] if value is not None and hasattr(params, value) else []), "compute")
    logged = {name: (getattr(params, name) if name == "seed" else to_dict(getattr(params, name)))
              for name in logged_sections}
    t0 = time.perf_counter()
    try:
        with tracking.stage_run(run_name, params=logged):
            metrics = run(params, root)
            metrics = {**metrics, "stage_seconds": round(time.perf_counter() - t0, 2)}
            write_json(root / "metrics" / f"{metrics_name}.json", metrics)
            tracking.log_metrics(metrics)
    except USER_ERRORS as e:
        print(f"error: {stage}: {e}", file=sys.stderr)
        _restore_hint(stage)
        return 1
    finally:
        _leave_process_group()
    print(f"{run_name}: done in {time.perf_counter() - t0:.1f}s -> metrics/{metrics_name}.json")
    return 0


def _restore_hint(stage: str) -> None:
    """Under ``dvc repro`` / ``dvc exp run`` (not the flow, which restores them itself): how to get the outputs back.

    DVC removed the stage's outputs before starting this command; they are all cached.
    """
    if os.environ.get("DVC_STAGE") and not os.environ.get("RLHF_MLFLOW_PARENT_RUN_ID"):
        print(f"note: DVC removed {stage}'s outputs before it ran; `dvc checkout {stage}` brings back the previous "
              "ones", file=sys.stderr)


def _secondary_worker(stage: str, run: Callable[..., dict], params: Any, root: Path) -> int:
    """A data-parallel worker other than rank 0: it trains its share; rank 0 tracks and writes."""
    try:
        run(params, root)
    except USER_ERRORS as e:
        print(f"error: {stage} (rank {os.environ.get('RANK')}): {e}", file=sys.stderr)
        return 1
    finally:
        _leave_process_group()
    return 0


def _leave_process_group() -> None:
    """Destroy torch.distributed's process group if a stage joined one (a worker exiting with it aborts)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def stage_threads(params: Any, sections: Sequence[str]) -> int:
    """The ``threads`` setting of the stage's section (0 when none)."""
    return next((section.threads for section in (getattr(params, name) for name in sections)
                 if hasattr(section, "threads")), 0)
