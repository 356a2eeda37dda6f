"""benchmarks/ppo_sweep.py on the tiny-profile project: its lines, its determinism, its errors."""
import json
import math
import subprocess
import sys
from pathlib import Path

from tests.smoke.conftest import child_env

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ROOT / "benchmarks" / "ppo_sweep.py"


def sweep(project: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SWEEP), "--project", str(project), "--out", str(out), "--threads", "1",
                           *args], env=child_env(project), capture_output=True, text=True, timeout=600)


def lines(proc: subprocess.CompletedProcess) -> list[dict]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_sweep_reports_each_point_and_points_do_not_perturb_training(smoke_project: Path, tmp_path: Path):
    with_points = lines(sweep(smoke_project, tmp_path, "--name", "a", "--set", "ppo.iterations=3",
                              "--set", "ppo.lr=1e-2", "--eval-at", "1,2", "--rows"))
    assert [p["iteration"] for p in with_points] == [1, 2, 3]
    for point in with_points:
        assert 0.0 <= point["judge"] <= 1.0 and point["distinct_2_ratio"] >= 0.0
        assert math.isfinite(point["kl"])  # a sample estimate: may dip below 0 after a large step
        assert {"judge_published", "judge_heldout", "repetition_rate", "mean_length"} <= set(point)
        assert point["set"] == ["ppo.iterations=3", "ppo.lr=1e-2"]
    rows = json.loads((tmp_path / "a-2.rows.json").read_text(encoding="utf-8"))
    assert rows and {"prompt", "base", "tuned", "base_judge", "tuned_judge", "kl"} <= set(rows[0])
    keep = ("judge", "kl", "distinct_2_ratio", "mean_length")
    assert any(with_points[0][k] != with_points[-1][k] for k in keep)  # training moved the policy
    last_only = lines(sweep(smoke_project, tmp_path, "--name", "b", "--set", "ppo.iterations=3",
                            "--set", "ppo.lr=1e-2"))
    assert len(last_only) == 1 and not list(tmp_path.glob("b-*.rows.json"))  # rows only when asked for
    assert {k: last_only[0][k] for k in keep} == {k: with_points[-1][k] for k in keep}
    recorded = (tmp_path / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(recorded) == 4


def test_sweep_errors_name_what_is_wrong(smoke_project: Path, tmp_path: Path):
    proc = sweep(tmp_path, tmp_path)
    assert proc.returncode != 0 and "models/base" in proc.stderr and "run the pipeline there first" in proc.stderr
    proc = sweep(smoke_project, tmp_path, "--set", "ppo.lr")
    assert proc.returncode != 0 and "--set 'ppo.lr': expected KEY=VALUE" in proc.stderr
    proc = sweep(smoke_project, tmp_path, "--set", "ppo.lrr=1")
    assert proc.returncode != 0 and "unknown key ppo.lrr" in proc.stderr
