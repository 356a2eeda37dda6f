"""``params.yaml``: one section per stage, loaded into typed, validated config objects."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlhf.config import from_dict, param, read_yaml
from rlhf.data.config import DataConfig
from rlhf.evaluation.samples import EvalConfig
from rlhf.models.base_lm import BaseConfig
from rlhf.ppo.config import PPOConfig
from rlhf.reward.config import RewardModelConfig


@dataclass
class Params:
    """The whole ``params.yaml``. ``seed`` seeds every stage; each section configures one stage."""

    seed: int = param(0, "seed of every random choice in every stage", min=0)
    data: DataConfig = param(None, "prepare stage: corpus, cleaning, splits, rank lists, prompts", factory=DataConfig)
    base: BaseConfig = param(None, "base stage: bootstrapped or loaded causal LM", factory=BaseConfig)
    reward_model: RewardModelConfig = param(None, "train_reward_model stage: backbone, rank loss, training",
                                            factory=RewardModelConfig)
    ppo: PPOConfig = param(None, "ppo stage: rollouts, KL penalty, losses, checkpoints", factory=PPOConfig)
    eval: EvalConfig = param(None, "evaluate_samples stage: sampling, judge, promotion gate", factory=EvalConfig)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``path``; a bad key, type or value raises ``ConfigError`` naming it."""
    return from_dict(Params, read_yaml(path))


HEADER = ("# Pipeline parameters: one section per stage (the stage reads the section named after it).\n"
          "# Generated from the typed configs (rlhf/*/config.py); every key is validated on load.\n")


def default_params_yaml() -> str:
    """``params.yaml`` with every default and its help text (``python -m rlhf.params > params.yaml``)."""
    from rlhf.config import render_yaml

    return HEADER + render_yaml(Params())


if __name__ == "__main__":
    print(default_params_yaml(), end="")
