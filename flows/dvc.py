"""Thin wrappers over the ``dvc`` command line (DVC is the source of truth for what is up to date)."""
from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import yaml


def stage_names(root: Path) -> list[str]:
    """Stages of ``dvc.yaml`` in file order (the pipeline order)."""
    data = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) or {}
    return list((data.get("stages") or {}).keys())


def stage_metrics_file(root: Path, stage: str) -> Path:
    return root / "metrics" / f"{stage}.json"


def stage_items(root: Path, stage: str) -> list[str] | None:
    """The items of a ``foreach`` stage (``train_policy``: its algorithms), ``None`` for a plain stage.

    Such a stage writes ``metrics/<item>.json`` per item (``dvc repro <stage>`` runs them all).
    """
    data = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) or {}
    entry = (data.get("stages") or {}).get(stage) or {}
    items = entry.get("foreach") if "do" in entry else None
    return [str(i) for i in items] if isinstance(items, list) else None


def status(root: Path, stage: str) -> dict:
    """``dvc status --json <stage>``: ``{}`` when the stage is up to date, else what changed."""
    proc = subprocess.run([sys.executable, "-m", "dvc", "status", "--json", stage], cwd=root,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc status {stage} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
    out = proc.stdout.strip()
    return json.loads(out) if out else {}


def checkout(root: Path, stage: str) -> bool:
    """``dvc checkout --force <stage>``: the stage's outputs as ``dvc.lock`` records them, from the cache.

    After a failed ``dvc repro``, which removed them before the stage's command ran. False when there
    was nothing to restore (a first run: no lock entry, nothing cached).
    """
    proc = subprocess.run([sys.executable, "-m", "dvc", "checkout", "--force", stage], cwd=root,
                          capture_output=True, text=True)
    return proc.returncode == 0


def repro(root: Path, stage: str, *, force: bool = False, echo: Callable[[str], None] | None = None,
          tail_lines: int = 40) -> tuple[int, str]:
    """Run ``dvc repro --single-item <stage>``, streaming its output to our stdout.

    Returns ``(exit code, last lines of output)``. Progress bars (``\\r``) pass through untouched;
    complete lines also go to ``echo`` (e.g. a Prefect logger).
    """
    cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", stage] + (["--force"] if force else [])
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    buf = b""
    assert proc.stdout is not None
    while True:
        chunk = proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
        if not chunk:
            break
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").split("\r")[-1].rstrip()
            if line:
                tail.append(line)
                if echo is not None and "\r" not in raw.decode("utf-8", errors="replace"):
                    echo(line)
    if buf.strip():
        tail.append(buf.decode("utf-8", errors="replace").split("\r")[-1].rstrip())
    return proc.wait(), "\n".join(tail)
