"""What every stage entry point shares: environment, params, the MLflow run, the metrics file."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tasks.environment import setup_environment

# Errors a user can fix from the message alone: printed as one line, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as pretty, key-sorted JSON (stable diffs for ``dvc metrics diff``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def stage_main(stage: str, run: Callable[..., dict], sections: Sequence[str],
               argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tasks.<stage>`` (what ``dvc.yaml`` calls).

    Loads ``params.yaml``, opens the stage's MLflow run (nested under the flow's run when the
    flow started this process), calls ``run(params, root)``, writes ``metrics/<stage>.json`` and
    logs the metrics. A bad param or bad input exits with status 1 and a one-line message.
    """
    parser = argparse.ArgumentParser(prog=f"python -m tasks.{stage}", description=f"Run the {stage} stage.")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    root = setup_environment()

    from rlhf.config import ConfigError, to_dict
    from rlhf.params import load_params

    try:
        params = load_params(root / args.params)
    except ConfigError as e:
        print(f"error: {args.params}: {e}", file=sys.stderr)
        return 1

    from tasks import tracking

    logged = {name: (getattr(params, name) if name == "seed" else to_dict(getattr(params, name)))
              for name in sections}
    t0 = time.perf_counter()
    try:
        with tracking.stage_run(stage, params=logged):
            metrics = run(params, root)
            metrics = {**metrics, "stage_seconds": round(time.perf_counter() - t0, 2)}
            write_json(root / "metrics" / f"{stage}.json", metrics)
            tracking.log_metrics(metrics)
    except USER_ERRORS as e:
        print(f"error: {stage}: {e}", file=sys.stderr)
        return 1
    print(f"{stage}: done in {time.perf_counter() - t0:.1f}s -> metrics/{stage}.json")
    return 0
