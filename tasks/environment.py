"""The project's process environment: telemetry off, all state inside the project.

Every entry point (``rlhf`` CLI, ``python -m tasks.<stage>``, tests) calls :func:`setup_environment`
before importing Prefect, MLflow or DVC. Values already set by the user win (``setdefault``), so
``MLFLOW_TRACKING_URI``, ``PREFECT_HOME``, ``PREFECT_API_URL`` or ``HF_HUB_OFFLINE=0`` override.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

TELEMETRY_OFF = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def find_project_root(start: str | Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: cwd) holding ``dvc.yaml``, else cwd."""
    here = Path(start or os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "dvc.yaml").is_file():
            return candidate
    return here


def setup_environment(root: str | Path | None = None) -> Path:
    """Set the project's environment defaults; returns the project root.

    - telemetry of Prefect, MLflow, DVC and the Hugging Face hub off;
    - ``PREFECT_HOME`` = ``<root>/.prefect`` (ephemeral server database, task-result storage);
    - ``MLFLOW_TRACKING_URI`` = ``sqlite:///<root>/mlflow.db`` (absolute), artifacts under
      ``<root>/mlartifacts`` (see :mod:`tasks.tracking`);
    - ``HF_HUB_OFFLINE=1``: nothing is downloaded unless the user sets ``HF_HUB_OFFLINE=0``;
    - tokenizers' fork warning off (stages are single-process).
    """
    root = find_project_root(root)
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str(root / ".prefect"))
    # The ephemeral server's start can take longer than Prefect's 20 s on a busy 2-core machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # `dvc exp run --temp/--queue` runs stages in a copy under .dvc/tmp/exps and sets DVC_ROOT to the
    # project: track there, not in a throw-away store inside the copy.
    store_root = Path(os.environ.get("DVC_ROOT") or root)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{store_root / 'mlflow.db'}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads slowed
    # PPO iterations 4-8x. Read when torch loads, so it reaches the stage processes the flow starts.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("RLHF_PROJECT_ROOT", str(root))
    # dvc.yaml says `python -m tasks.<stage>`: make that the interpreter running us (the venv's),
    # even when the venv is not activated.
    bin_dir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    return root
