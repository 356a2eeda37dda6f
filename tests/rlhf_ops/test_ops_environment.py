"""The project's process environment (``rlhf_ops.environment``): OpenMP waiting, hub downloads and kernels."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_ops import environment

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("given, expected", [
    ({}, {"GOMP_SPINCOUNT": "10000"}),  # nothing set: spin ~0.1 ms, then sleep
    ({"OMP_WAIT_POLICY": "PASSIVE"}, {"OMP_WAIT_POLICY": "PASSIVE"}),  # the user's policy stays in force
    ({"OMP_WAIT_POLICY": "active"}, {"OMP_WAIT_POLICY": "active"}),
    ({"GOMP_SPINCOUNT": "0"}, {"GOMP_SPINCOUNT": "0"}),  # the user's count wins
])
def test_openmp_defaults_leave_the_users_settings(given, expected):
    env = {"PATH": "/bin", **given}
    environment.openmp_defaults(env)
    assert env == {"PATH": "/bin", **expected}


def test_setup_environment_reaches_processes_started_after_it(monkeypatch, tmp_path):
    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MLFLOW_TRACKING_URI", "PREFECT_HOME", "RLHF_PROJECT_ROOT",
                "RLHF_PYTHON"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PATH", os.environ["PATH"])  # restored after the test
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    environment.setup_environment(tmp_path)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('GOMP_SPINCOUNT'), "
                            "os.environ.get('OMP_WAIT_POLICY'))"], capture_output=True, text=True, check=True)
    assert child.stdout.split() == ["10000", "None"]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("policy, expected", [(None, "10000"), ("PASSIVE", None)])
def test_the_makefile_sets_the_same_default_unless_a_policy_is_given(policy, expected):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MAKEFLAGS")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run(["make", "-s", "-p", "-f", str(ROOT / "Makefile"), "help"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    values = [line.split("=", 1)[1].strip() for line in out.splitlines() if line.startswith("GOMP_SPINCOUNT ")]
    assert (values[0] if values else None) == expected
    if expected:
        assert expected == environment.GOMP_SPINCOUNT


@pytest.mark.parametrize("given, expected", [
    ({}, {"HF_HUB_OFFLINE": "1", "USE_HUB_KERNELS": "NO"}),
    ({"HF_HUB_OFFLINE": "0", "USE_HUB_KERNELS": "YES"}, {"HF_HUB_OFFLINE": "0", "USE_HUB_KERNELS": "YES"}),
])
def test_hub_defaults_leave_the_users_settings(given, expected):
    env = {"PATH": "/bin", **given}
    environment.hub_defaults(env)
    assert env == {"PATH": "/bin", **expected}


def test_models_loaded_under_the_hub_defaults_use_no_hub_kernels(monkeypatch, tmp_path):
    """transformers 5 turns hub kernels on for every loaded model when ``kernels`` is installed; on a GPU their
    first ``.eval()`` downloads kernel code, which fails offline. The project's default turns them off."""
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16, n_positions=8)).save_pretrained(tmp_path)
    monkeypatch.delenv("USE_HUB_KERNELS", raising=False)
    assert AutoModelForCausalLM.from_pretrained(tmp_path).use_kernels  # transformers' own default
    env = dict(os.environ)
    environment.hub_defaults(env)
    monkeypatch.setenv("USE_HUB_KERNELS", env["USE_HUB_KERNELS"])
    assert not AutoModelForCausalLM.from_pretrained(tmp_path).use_kernels


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_makefile_turns_hub_kernels_off_unless_the_user_asks():
    for given, expected in ((None, "NO"), ("YES", "YES")):
        env = {k: v for k, v in os.environ.items() if k not in ("USE_HUB_KERNELS", "MAKEFLAGS")}
        if given:
            env["USE_HUB_KERNELS"] = given
        out = subprocess.run(["make", "-s", "-p", "-f", str(ROOT / "Makefile"), "help"], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True).stdout
        values = [line.split("=", 1)[1].strip() for line in out.splitlines() if line.startswith("USE_HUB_KERNELS ")]
        assert values and values[0] == expected, (given, values)
