"""``params.yaml``: one section per stage, loaded into typed, validated config objects."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlhf.config import from_dict, param, read_yaml
from rlhf.data.config import DataConfig
from rlhf.models.base_lm import BaseConfig
from rlhf.reward.config import RewardModelConfig


@dataclass
class Params:
    """The whole ``params.yaml``. ``seed`` seeds every stage; each section configures one stage."""

    seed: int = param(0, "seed of every random choice in every stage", min=0)
    data: DataConfig = param(None, "prepare stage: corpus, cleaning, splits, rank lists, prompts", factory=DataConfig)
    base: BaseConfig = param(None, "base stage: bootstrapped or loaded causal LM", factory=BaseConfig)
    reward_model: RewardModelConfig = param(None, "train_reward_model stage: backbone, rank loss, training",
                                            factory=RewardModelConfig)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``path``; a bad key, type or value raises ``ConfigError`` naming it."""
    return from_dict(Params, read_yaml(path))
