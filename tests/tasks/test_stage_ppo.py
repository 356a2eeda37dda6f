"""The ppo stage's checkpoint key: the trainer's run fingerprint plus the input models and reward source."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from rlhf.params import Params
from rlhf.ppo.trainer import run_fingerprint
from tasks.ppo import BASE_DIR, RM_DIR, run_inputs


def _model(root: Path, rel: Path, content: str) -> None:
    (root / rel).mkdir(parents=True, exist_ok=True)
    (root / rel / "model.safetensors").write_text(content)


def test_run_inputs_follow_the_models_and_the_reward_source(tmp_path: Path):
    _model(tmp_path, BASE_DIR, "base")
    _model(tmp_path, RM_DIR, "rm-1")
    params = Params()
    inputs = run_inputs(params, tmp_path)
    assert set(inputs) == {"base", "reward_model"}
    key = run_fingerprint(params.ppo, ["p"], params.seed, inputs)

    _model(tmp_path, RM_DIR, "rm-2")  # a retrained reward model: another run, its own checkpoints
    assert run_fingerprint(params.ppo, ["p"], params.seed, run_inputs(params, tmp_path)) != key

    judged = dataclasses.replace(params, ppo=dataclasses.replace(params.ppo, reward_source="judge"))
    judge_inputs = run_inputs(judged, tmp_path)
    assert set(judge_inputs) == {"base", "judge"}  # the reward model's files no longer matter, the judge's settings do
    assert judge_inputs["base"] == inputs["base"]
