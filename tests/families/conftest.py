"""A tiny-profile project prepared once, and tiny checkpoints of real families built from its corpus."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.families import checkpoints
from tests.smoke.conftest import child_env, copy_project

# One process runs a family's steps in order: each stage through its own entry point (``python -m
# tasks.<stage>``, via runpy) and the CLI through ``rlhf_cli.main.main``; it stops at the first failure.
# One interpreter for all steps saves the ~4 s of imports each stage process would pay.
DRIVER = r"""
import json, runpy, sys, time, traceback
from rlhf_cli.main import main as cli

def version(stage):  # the registry version a stage of this run registered
    with open(f"metrics/{stage}.json", encoding="utf-8") as f:
        return str(json.load(f)["registry"]["version"])

for step in sys.argv[1:]:
    t0 = time.perf_counter()
    print(f"@@ step {step}", flush=True)
    try:
        if step.startswith("rlhf\x1f"):
            args = step.split("\x1f")[1:]
            args = [a.replace("{rm_version}", version("evaluate_reward_model")).replace("{policy_version}",
                                                                                       version("ppo")) for a in args]
            rc = cli(args)
        else:
            module, *argv = step.split("\x1f")  # a stage's own arguments, e.g. train_policy --algorithm grpo
            sys.argv = [f"tasks.{module}", *argv]
            try:
                runpy.run_module(f"tasks.{module}", run_name="__main__")
                rc = 0
            except SystemExit as e:
                rc = e.code or 0
    except BaseException:
        traceback.print_exc()
        rc = 99
    print(f"@@ done {step.split(chr(31))[0]} rc={rc} {time.perf_counter() - t0:.1f}s", flush=True)
    if rc:
        sys.exit(f"step {step!r} failed with {rc}")
"""


def cli_step(*args: str) -> str:
    """A driver step that runs ``rlhf ARGS...`` (arguments may contain spaces; ``{rm_version}`` and
    ``{policy_version}`` become the registry versions this run's stages registered)."""
    return "\x1f".join(["rlhf", *args])


def run_steps(project: Path, steps: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``steps`` in ``project`` (one child process); fail with its output when a step fails."""
    proc = subprocess.run([sys.executable, "-c", DRIVER, *steps], cwd=project, env=child_env(project), check=False,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"steps {[s.split(chr(31))[0] for s in steps]} exited {proc.returncode}\n--- stdout\n"
                    f"{proc.stdout[-8000:]}\n--- stderr\n{proc.stderr[-8000:]}")
    return proc


@pytest.fixture(scope="session")
def family_project(tmp_path_factory) -> Path:
    """The tiny-profile project after ``prepare`` (MLflow store and registry shared by the family runs)."""
    project = copy_project(tmp_path_factory.mktemp("families") / "project")
    run_steps(project, ["prepare"])
    return project


@pytest.fixture(scope="session")
def family_checkpoints(family_project) -> dict[str, Path]:
    """Tiny random checkpoints built from the project's LM corpus, outside the project."""
    texts = (family_project / "data/prepared/lm/train.txt").read_text(encoding="utf-8").splitlines()
    root = family_project.parent / "checkpoints"
    return {
        "gpt2_chinese": checkpoints.gpt2_chinese(root / "gpt2-chinese", texts),
        "qwen2": checkpoints.bpe_causal_lm(root / "qwen2-bpe", texts, arch="qwen2", pad=None),
        "llama": checkpoints.bpe_causal_lm(root / "llama-bpe", texts, arch="llama", pad="<|pad|>"),
        "bert": checkpoints.bert_encoder(root / "bert-chinese", texts),
    }
