"""Helpers of the operations tests: local Prefect and MLflow servers, a copy of the smoke project.

Each server listens on 127.0.0.1 on a free port, keeps its state in a temporary directory, runs
in a process group of its own and is stopped by that group's id (SIGTERM, then SIGKILL).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log when it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"no answer from {url} after {timeout:.0f}s:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM the process group we started (its id is the leader's pid), SIGKILL what outlives ``grace``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):  # children that outlived their parent
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the state variables of any project, telemetry off."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME", "PREFECT_HOME",
                        "PREFECT_API_URL", "RLHF_PROJECT_ROOT", "RLHF_MLFLOW_PARENT_RUN_ID")}
    env.update(DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false", MLFLOW_DISABLE_TELEMETRY="true",
               DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """``prefect server start`` with its own PREFECT_HOME; yields the API URL (``http://127.0.0.1:<port>/api``)."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = home / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                env=clean_env(PREFECT_HOME=str(home)), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=home)
    try:
        url = f"http://127.0.0.1:{port}/api"
        wait_healthy(f"{url}/health", proc, log)
        yield url
    finally:
        stop(proc)


@contextlib.contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """``mlflow server`` on SQLite + a local artifact store under ``root``; yields its URL."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "server.log"
    cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts")]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=root)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{url}/health", proc, log)
        yield url
    finally:
        stop(proc)


def copy_smoke_project(src: Path, dest: Path) -> Path:
    """A copy of the smoke project (git repo, DVC cache, outputs, MLflow store) that a test may change.

    The MLflow store records absolute artifact locations: they are moved to the copy, so its runs
    never write into the original project.
    """
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(".prefect", "checkpoints", "dvc_plots"))
    con = sqlite3.connect(dest / "mlflow.db")
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for _cid, column, ctype, *_ in con.execute(f'PRAGMA table_info("{table}")').fetchall():
                if any(t in (ctype or "").upper() for t in ("CHAR", "TEXT", "CLOB")):
                    con.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) WHERE "{column}" LIKE ?',
                                (str(src), str(dest), f"%{src}%"))
        con.commit()
    finally:
        con.close()
    return dest
