"""The project's process environment: telemetry off, all state inside the project.

Every entry point (``rlhf``'s ``main``, a stage's ``stage_main``, the pipeline flow, the schedule's
``serve``/``deploy``) calls :func:`setup_environment` first, before Prefect is imported (Prefect reads
``PREFECT_HOME`` when it is imported); no module does it when imported. Values already set by the
user win (``setdefault``), so ``MLFLOW_TRACKING_URI``, ``PREFECT_HOME``, ``PREFECT_API_URL``,
``HF_HUB_OFFLINE=0`` or ``USE_HUB_KERNELS=YES`` override.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import MutableMapping

TELEMETRY_OFF = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}

# MLflow's HTTP client (an http(s) MLFLOW_TRACKING_URI): a few quick retries and a 60 s read timeout, so
# a server that went away fails a stage in seconds, not minutes (MLflow's defaults: 7 retries with
# backoff factor 2, 120 s timeout: ~4 minutes). The pre-flight (rlhf_ops/preflight.py) checks the
# server before a run starts. The user's own settings win.
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


# How long an idle OpenMP thread of torch (libgomp on Linux) spins before it sleeps: ~0.1 ms (libgomp counts
# ~100000 spins a millisecond). Its own default (3 ms) burns shared cores; OMP_WAIT_POLICY=PASSIVE (no spin,
# what the project set before) puts the threads to sleep between torch's many small ops. Measured with
# benchmarks/ppo.py on 2 cores (2026-12-03): idle, PASSIVE 37.7 episodes/s, 10000 spins 56.4, libgomp's
# default 55.1; with two busy processes on the same cores, 18.1, 22.1 and 18.9 (the default burning 3.2
# CPU-s an iteration against 2.3). See README "Threads".
GOMP_SPINCOUNT = "10000"


def openmp_defaults(env: MutableMapping[str, str] | None = None) -> None:
    """``GOMP_SPINCOUNT=10000`` (see :data:`GOMP_SPINCOUNT`) unless the user set ``OMP_WAIT_POLICY`` or
    ``GOMP_SPINCOUNT``. libgomp reads them once, when torch loads it: call this before ``import torch``
    (processes started afterwards inherit it)."""
    env = os.environ if env is None else env
    if "OMP_WAIT_POLICY" not in env:
        env.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)


# Hub defaults: nothing is fetched from the Hugging Face hub at run time unless the user asks.
# USE_HUB_KERNELS: transformers 5 loads every `from_pretrained` model with `use_kernels=True` when the
# `kernels` package is present (it is a dependency of transformers 5.25), and on a CUDA device its first
# `.train()` / `.eval()` downloads kernel code (`kernels-community/...`) from the hub. Offline that raises
# ("... is not available in the local cache and Hugging Face Hub is in offline mode": seen on an H200,
# 2026-12-04); online it runs code that changes on the hub's side. On the CPU no layer is replaced either
# way (same outputs). USE_HUB_KERNELS=YES and HF_HUB_OFFLINE=0 let them in.
HUB_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "USE_HUB_KERNELS": "NO",
}


def hub_defaults(env: MutableMapping[str, str] | None = None) -> None:
    """:data:`HUB_DEFAULTS` where the user has not set them (read by transformers when it loads a model)."""
    env = os.environ if env is None else env
    for key, value in HUB_DEFAULTS.items():
        env.setdefault(key, value)


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
      ``<root>/mlartifacts`` (see :mod:`rlhf_ops.tracking`);
    - ``HF_HUB_OFFLINE=1``, ``USE_HUB_KERNELS=NO`` (:data:`HUB_DEFAULTS`): nothing is downloaded, no hub kernel
      code runs, unless the user sets ``HF_HUB_OFFLINE=0`` / ``USE_HUB_KERNELS=YES``;
    - MLflow's HTTP retries and timeout shortened (:data:`MLFLOW_HTTP_DEFAULTS`);
    - ``RLHF_PYTHON`` = this interpreter (``tasks/run.sh`` runs the stages with it);
    - tokenizers' fork warning off (stages are single-process);
    - OpenMP threads spin briefly before they sleep (:func:`openmp_defaults`).
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
    # An unreachable tracking server: MLflow's defaults (7 retries, 120 s timeout) take minutes to give up.
    for key, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    hub_defaults()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Idle OpenMP threads spin ~0.1 ms, then sleep. Read when torch loads (no entry point has imported it
    # yet), so it also reaches the stage processes the flow starts.
    openmp_defaults()
    os.environ.setdefault("RLHF_PROJECT_ROOT", str(root))
    # dvc.yaml runs `sh tasks/run.sh <stage>`, which starts `python -m tasks.<stage>` with $RLHF_PYTHON when
    # set: the stages the flow starts use the interpreter running us. The same interpreter first on PATH
    # for anything else that calls `python` (the venv's, even when the venv is not activated).
    os.environ.setdefault("RLHF_PYTHON", sys.executable)
    bin_dir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    return root
