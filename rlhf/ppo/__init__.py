"""PPO for causal language models (TRL >= 1.13 no longer ships one).

Read :mod:`rlhf.ppo.trainer` top to bottom for one iteration; the arithmetic (GAE, clipped
losses, KL estimators and controllers) is in :mod:`rlhf.ppo.core`.
"""
from rlhf.ppo.config import PPOConfig
from rlhf.ppo.core import (AdaptiveKLController, FixedKLController, compute_gae, compute_rewards,
                           entropy_from_logits, entropy_from_logprobs, kl_penalty, logprobs_from_logits,
                           masked_mean, masked_var, masked_whiten, policy_loss, value_loss)
from rlhf.ppo.generate import sample_completions
from rlhf.ppo.model import PolicyWithValueHead
from rlhf.ppo.rewards import (CharShareReward, JudgeReward, RewardFunction, RewardModelScorer,
                              build_reward_fn)
from rlhf.ppo.rollout import Rollout, rollout
from rlhf.ppo.trainer import ppo_step, train_ppo

__all__ = [
    "PPOConfig", "PolicyWithValueHead", "Rollout", "rollout", "ppo_step", "train_ppo", "sample_completions",
    "RewardFunction", "RewardModelScorer", "JudgeReward", "CharShareReward", "build_reward_fn",
    "AdaptiveKLController", "FixedKLController", "compute_gae", "compute_rewards", "entropy_from_logits",
    "entropy_from_logprobs", "kl_penalty", "logprobs_from_logits", "masked_mean", "masked_var", "masked_whiten",
    "policy_loss", "value_loss",
]
