"""`dvc exp run -S ppo.iterations=2` on the smoke project: only ppo and evaluate_samples re-run, the
MLflow runs carry the experiment's name, `dvc metrics diff` and `dvc plots diff` show the difference."""
from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.smoke.conftest import child_env
from tests.smoke.ops_helpers import copy_smoke_project

pytestmark = pytest.mark.slow
DVC = [sys.executable, "-m", "dvc"]


def _run(project: Path, *cmd: str, timeout: int = 900) -> str:
    proc = subprocess.run(list(cmd), cwd=project, env=child_env(project), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr


def _runs_tagged(project: Path, key: str, value: str) -> dict[str, dict]:
    con = sqlite3.connect(project / "mlflow.db")
    try:
        rows = con.execute("SELECT r.run_uuid, r.name FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                           "WHERE t.key = ? AND t.value = ?", (key, value)).fetchall()
        return {name: dict(con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall())
                for run_id, name in rows}
    finally:
        con.close()


def test_dvc_experiment_reruns_ppo_only_and_is_tracked(smoke_project: Path, tmp_path: Path):
    project = copy_smoke_project(smoke_project, tmp_path / "project")
    # The baseline: the first run's lock and metrics committed, as a user does before experimenting.
    _run(project, "git", "add", "-A")
    _run(project, "git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "baseline", "--allow-empty")
    baseline = _run(project, "git", "rev-parse", "HEAD").strip()

    out = _run(project, *DVC, "exp", "run", "-S", "ppo.iterations=2")
    for stage in ("prepare", "base", "train_reward_model", "evaluate_reward_model"):
        assert f"Stage '{stage}' didn't change, skipping" in out, out[-3000:]
    assert "Running stage 'ppo'" in out and "Running stage 'evaluate_samples'" in out
    name = re.search(r"Ran experiment\(s\): (\S+)", out).group(1)

    changes = json.loads(_run(project, *DVC, "metrics", "diff", "--json"))
    assert changes["metrics/ppo.json"]["iterations"] == {"old": 3, "new": 2, "diff": -1}
    assert "metrics/evaluate_samples.json" in changes
    assert "metrics/prepare.json" not in changes  # unchanged stages have no differences
    # The experiment by name against its baseline, as `dvc exp show` lists it.
    assert "iterations" in _run(project, *DVC, "metrics", "diff", baseline, name)

    plots = _run(project, *DVC, "plots", "diff", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text(encoding="utf-8")
    assert "index.html" in plots and "HEAD" in html and "workspace" in html

    # dvc exp run calls the stage commands directly (no pipeline parent run): top-level stage runs,
    # tagged with the experiment's name and baseline commit, and with the data hashes dvc.lock has now.
    runs = _runs_tagged(project, "dvc.exp_name", name)
    assert set(runs) == {"ppo", "evaluate_samples"}
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    for stage, tags in runs.items():
        assert tags["dvc.exp_baseline_rev"] == baseline
        assert "mlflow.parentRunId" not in tags
        assert {k[len("dvc.dep."):]: v for k, v in tags.items() if k.startswith("dvc.dep.")} == \
            {d["path"]: d["md5"] for d in lock[stage]["deps"]}
    assert runs["ppo"]["dvc.out.models/policy"] == next(o["md5"] for o in lock["ppo"]["outs"]
                                                        if o["path"] == "models/policy")
