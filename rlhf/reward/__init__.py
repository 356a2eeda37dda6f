"""The reward model: a scalar score learned from rank lists with a listwise rank loss.

``config``   :class:`RewardModelConfig` (``params.yaml`` section ``reward_model``)
``loss``     :func:`rank_loss` over batched rank lists, :func:`build_rank_pairs`
``model``    :func:`load_reward_backbone`, :class:`RewardScorer`, save / load
``train``    :func:`train_reward_model`
``evaluate`` :func:`evaluate_reward_model`: pairwise / exact-order accuracy, Kendall tau-b
"""
from rlhf.reward.config import RewardModelConfig
from rlhf.reward.evaluate import RankListView, as_rank_list, evaluate_reward_model, kendall_tau_b, prepare_lists
from rlhf.reward.loss import InvalidRankListError, RankPairs, build_rank_pairs, check_tiers, rank_loss
from rlhf.reward.model import (RewardScorer, load_reward_backbone, load_reward_model, reward_stats,
                               save_reward_model)
from rlhf.reward.train import train_reward_model

__all__ = [
    "InvalidRankListError", "RankListView", "RankPairs", "RewardModelConfig", "RewardScorer", "as_rank_list",
    "build_rank_pairs", "check_tiers", "evaluate_reward_model", "kendall_tau_b", "load_reward_backbone",
    "load_reward_model", "prepare_lists", "rank_loss", "reward_stats", "save_reward_model", "train_reward_model",
]
