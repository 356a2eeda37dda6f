"""A throw-away copy of the project as its own git repository, for end-to-end runs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Variables that would point a child process at this checkout's state instead of the copy's.
STATE_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "PREFECT_HOME", "PREFECT_API_URL",
              "RLHF_PROJECT_ROOT", "RLHF_MLFLOW_PARENT_RUN_ID")


# Not needed to run the pipeline, or outputs of a previous run in this checkout.
SKIP = ("tests/", "benchmarks/", "data/prepared/", "models/", "metrics/", "reports/", "dvc.lock")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def copy_project(dest: Path) -> Path:
    """Copy the tracked and untracked-but-not-ignored files of this checkout into a fresh git repo."""
    files = _git(REPO, "ls-files", "-co", "--exclude-standard", "-z").split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file() and not rel.startswith(SKIP):
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    shutil.copy2(REPO / "tests/smoke/params.yaml", dest / "params.yaml")
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "smoke copy")
    return dest


def child_env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in STATE_VARS}
    env.update(HF_HUB_OFFLINE="1", DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def rlhf(project: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the ``rlhf`` CLI in ``project``; fail with its output when it exits non-zero."""
    proc = subprocess.run([sys.executable, "-m", "rlhf_cli.main", *args], cwd=project, env=child_env(project),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"rlhf {' '.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n"
                    f"--- stderr\n{proc.stderr[-6000:]}")
    return proc


def build_smoke_project(tmp_path_factory) -> Path:
    """The tiny-profile project after one ``rlhf run``: the ``smoke_project`` fixture (tests/conftest.py,
    so the smoke and the fault tests share one build per session)."""
    project = copy_project(tmp_path_factory.mktemp("smoke") / "project")
    proc = rlhf(project, "run")
    (project / "first_run.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    return project
