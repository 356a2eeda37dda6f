"""benchmarks/best_of_n.py: its selection helpers, its lines on the tiny-profile project, its errors."""
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.smoke.conftest import child_env

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "best_of_n.py"


def load_script():
    spec = importlib.util.spec_from_file_location("best_of_n", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--project", str(project), "--threads", "1", *args],
                          env=child_env(project), capture_output=True, text=True, timeout=600)


def test_ranks_average_ties_and_spearman_reads_order_only():
    bon = load_script()
    assert bon.ranks([3.0, 1.0, 3.0, 2.0]) == [2.5, 0.0, 2.5, 1.0]
    assert bon.spearman([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)
    assert bon.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(bon.spearman([1, 1, 1], [1, 2, 3]))  # a constant scorer orders nothing


def test_top_k_of_n_picks_per_prompt_from_the_first_n_samples():
    bon = load_script()
    #         prompt 0 (4 samples)   prompt 1 (4 samples)
    scores = [0.1, 0.9, 0.5, 5.0, 0.3, 0.3, 0.8, 0.0]
    assert bon.top_k_of_n(scores, n_prompts=2, per_prompt=4, n=2, k=1) == [1, 4]  # tie: the earlier sample
    assert bon.top_k_of_n(scores, n_prompts=2, per_prompt=4, n=4, k=2) == [3, 1, 6, 4]
    assert bon.pool_sizes(16, 256) == [32, 64, 128, 256]
    assert bon.pool_sizes(2, 5) == [4, 5]


def test_lines_on_the_tiny_project(smoke_project: Path):
    rm_dir = smoke_project / "models" / "reward_model"
    proc = run(smoke_project, "--samples", "8", "--keep", "2", "--reward-model", f"again={rm_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    head, *points = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert head["keep"] == 2 and head["samples_per_prompt"] == 8 and head["prompts"] >= 1
    assert set(head["spearman_with_judge"]) == {"reward_model", "again", "mean"}
    by = {}
    for p in points:
        by.setdefault(p["selector"], []).append(p)
        assert p["kl_bound"] == pytest.approx(math.log(p["n"] / 2), abs=1e-3)
        assert 0.0 <= p["judge"] <= 1.0 and p["distinct_2_ratio"] >= 0.0
    assert list(by) == ["reward_model", "again", "mean", "judge"]
    assert [p["n"] for p in by["judge"]] == [4, 8]
    # the same reward model loaded twice selects the same samples, and so does their mean
    strip = [{k: v for k, v in p.items() if k != "selector"} for p in by["reward_model"]]
    assert strip == [{k: v for k, v in p.items() if k != "selector"} for p in by["again"]]
    assert strip == [{k: v for k, v in p.items() if k != "selector"} for p in by["mean"]]
    # the judge's own top picks of a larger pool score at least as high, and above the unselected samples
    judge = [p["judge"] for p in by["judge"]]
    assert head["judge_unselected"] <= judge[0] <= judge[1]


def test_errors_name_what_is_wrong(smoke_project: Path, tmp_path: Path):
    proc = run(tmp_path)
    assert proc.returncode != 0 and "models/base" in proc.stderr and "run the pipeline there first" in proc.stderr
    proc = run(smoke_project, "--samples", "3", "--keep", "2")
    assert proc.returncode != 0 and "--samples 3 must be at least twice --keep 2" in proc.stderr
    proc = run(smoke_project, "--samples", "4", "--keep", "2", "--reward-model", "other")
    assert proc.returncode != 0 and "expected NAME=DIR" in proc.stderr
    proc = run(smoke_project, "--samples", "4", "--keep", "2", "--reward-model", f"other={tmp_path}")
    assert proc.returncode != 0 and "holds no saved model" in proc.stderr
    proc = run(smoke_project, "--samples", "4", "--keep", "2", "--reward-model", f"judge={tmp_path}")
    assert proc.returncode != 0 and "is taken" in proc.stderr
