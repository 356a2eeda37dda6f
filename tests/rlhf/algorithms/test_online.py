"""GRPO and RLOO through TRL raise a toy reward (PPO's reward-function protocol, through the TRL adapter)
within a few steps, with the KL to the base (beta > 0: TRL re-loads the reference from the base directory)."""
import math

import pytest
from transformers import AutoModelForCausalLM

from rlhf.algorithms.config import GRPOConfig, RLOOConfig
from rlhf.algorithms.online import train_online

from tests.rlhf.algorithms.conftest import PROMPTS, mean_toy_reward
from tests.rlhf.ppo.toy_rewards import CharShareReward


@pytest.mark.parametrize("algorithm, cls", [("grpo", GRPOConfig), ("rloo", RLOOConfig)])
def test_toy_reward_rises_within_a_few_steps(tmp_path, base_dir, tok, algorithm, cls):
    reward = CharShareReward("好")
    cfg = cls(steps=8, batch_size=32, num_generations=8, lr=1e-2, max_new_tokens=8, beta=0.02)
    logged = []
    metrics = train_online(algorithm, cfg, base_dir, PROMPTS, reward, tmp_path / algorithm, seed=0,
                           on_log=lambda step, m: logged.append((step, m)))
    assert [step for step, _ in logged] == list(range(1, 9))
    assert all(math.isfinite(m["reward"]) and math.isfinite(m["kl"]) for _, m in logged)
    assert metrics["final_reward"] > 2 * metrics["first_reward"], metrics
    assert metrics["episodes"] == 256 and metrics["final_kl"] > 0
    # the saved policy, sampled with the project's sampler, scores higher than the base
    assert AutoModelForCausalLM.from_pretrained(tmp_path / algorithm) is not None
    assert (tmp_path / algorithm / "tokenizer.json").exists() or (tmp_path / algorithm / "vocab.txt").exists()
    before = mean_toy_reward(base_dir, tok, reward)
    after = mean_toy_reward(tmp_path / algorithm, tok, reward)
    assert after > 1.5 * before, (before, after)


def test_too_few_prompts_for_a_step_is_named(tmp_path, base_dir):
    cfg = GRPOConfig(steps=1, batch_size=32, num_generations=4)
    with pytest.raises(ValueError, match="fewer than the 8 distinct prompts"):
        train_online("grpo", cfg, base_dir, PROMPTS, CharShareReward("好"), tmp_path / "p", seed=0)
