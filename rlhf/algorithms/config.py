"""``GRPOConfig``, ``RLOOConfig``, ``DPOConfig``: the ``grpo``, ``rloo`` and ``dpo`` sections of ``params.yaml``.

Loaded with ``rlhf.config.from_dict(GRPOConfig, params["grpo"], prefix="grpo")``. The names differ from
TRL's where ours already exist in the ``ppo`` section (``max_new_tokens``, ``lr``, ``reward_source``,
``score_normalization``), so one vocabulary covers every algorithm; ``rlhf/algorithms/online.py`` and
``rlhf/algorithms/dpo.py`` say which TRL argument each field becomes. Defaults are sized for the
default pipeline on 2 CPU cores (the same order of sampled episodes as PPO's 50 x 64).
"""
from __future__ import annotations

from dataclasses import dataclass

from rlhf.config import ConfigError, param

ALGORITHMS = ("ppo", "grpo", "rloo", "dpo")
REWARD_SOURCES = ("reward_model", "judge")
NORMALIZATIONS = ("auto", "stats", "running", "none")


@dataclass
class PolicyConfig:
    """``params.yaml`` section ``policy``: which algorithms train a policy from the base model."""

    algorithms: list[str] = param(None, "policy algorithms to train, each into models/policy_<name> (ppo: "
                                  "models/policy): 'ppo' (ours), 'grpo', 'rloo', 'dpo' (TRL); the default "
                                  "pipeline trains ppo only", factory=lambda: ["ppo"])

    def validate(self, prefix: str = "policy") -> None:
        prefix = prefix or "policy"
        if not self.algorithms:
            raise ConfigError(f"{prefix}.algorithms: got []; expected at least one of {', '.join(ALGORITHMS)}")
        for i, name in enumerate(self.algorithms):
            if name not in ALGORITHMS:
                raise ConfigError(f"{prefix}.algorithms[{i}]: got {name!r}; expected one of "
                                  f"{', '.join(map(repr, ALGORITHMS))}")
        if len(set(self.algorithms)) != len(self.algorithms):
            raise ConfigError(f"{prefix}.algorithms: got {self.algorithms}; each algorithm at most once")


@dataclass
class OnlineConfig:
    """What GRPO and RLOO share: sample a group of completions per prompt, score them, update."""

    # --- schedule
    steps: int = param(100, "optimiser steps (TRL max_steps); each samples `batch_size` fresh episodes", min=1)
    batch_size: int = param(32, "episodes (prompt + completion) per step: batch_size / num_generations prompts, "
                            "num_generations completions each", min=2)
    num_generations: int = param(8, "completions sampled per prompt (the group a baseline is taken over)", min=2)
    num_iterations: int = param(1, "optimisation passes over each batch (mu; > 1 makes the clip matter)", min=1)
    lr: float = param(1e-5, "AdamW learning rate", min=0.0, min_exclusive=True)
    lr_schedule: str = param("constant", "'constant', or 'linear' decay to 0 over `steps`",
                             choices=("constant", "linear"))
    max_grad_norm: float = param(1.0, "clip the global gradient norm to this before each step", min=0.0)
    epsilon: float = param(0.2, "clip epsilon of the importance ratio", min=0.0, min_exclusive=True)

    # --- sampling
    max_new_tokens: int = param(16, "tokens sampled per completion (TRL max_completion_length)", min=1)
    temperature: float = param(1.0, "sampling temperature", min=0.0, min_exclusive=True)
    top_k: int = param(0, "sample from the k most likely tokens only; 0 = whole vocabulary", min=0)
    top_p: float = param(1.0, "nucleus sampling mass; 1.0 = off", min=0.0, max=1.0, min_exclusive=True)

    # --- reward and KL
    beta: float = param(0.05, "KL coefficient to the base model (TRL beta); 0 = no reference model, no KL", min=0.0)
    reward_source: str = param("reward_model", "'reward_model' (models/reward_model, normalised as PPO does) or "
                               "'judge' (the evaluation judge; only when you mean to optimise it)",
                               choices=REWARD_SOURCES)
    score_normalization: str = param("auto", "reward-model scores: 'stats' = reward_stats.json mean/std, 'running' "
                                     "= running mean/std, 'auto' = stats when the file exists else running, "
                                     "'none' = raw (the same rule as ppo.score_normalization)",
                                     choices=NORMALIZATIONS)
    reward_batch_size: int = param(64, "texts per reward-model / judge call", min=1)

    # --- memory
    gradient_checkpointing: bool = param(False, "recompute activations in the backward pass (TRL's default is on: "
                                         "slower, only worth it for large models on a GPU)")

    def validate(self, prefix: str) -> None:
        if self.batch_size % self.num_generations:
            raise ConfigError(f"{prefix}.num_generations: got {self.num_generations}; expected a divisor of "
                              f"{prefix}.batch_size={self.batch_size}")

    @property
    def prompts_per_step(self) -> int:
        """Distinct prompts in one step's batch."""
        return self.batch_size // self.num_generations


@dataclass
class GRPOConfig(OnlineConfig):
    """``params.yaml`` section ``grpo``: Group Relative Policy Optimization (``trl.GRPOTrainer``)."""

    loss_type: str = param("dapo", "TRL loss aggregation: 'grpo' (per-sequence mean), 'dapo' (per token over the "
                           "batch), 'dr_grpo' (constant normaliser), 'bnpo'",
                           choices=("grpo", "dapo", "dr_grpo", "bnpo"))
    scale_rewards: str = param("group", "divide advantages by the std of the 'group', the 'batch', or 'none' "
                               "(Dr. GRPO)", choices=("group", "batch", "none"))

    def validate(self, prefix: str = "grpo") -> None:
        super().validate(prefix or "grpo")


@dataclass
class RLOOConfig(OnlineConfig):
    """``params.yaml`` section ``rloo``: REINFORCE Leave-One-Out (``trl.RLOOTrainer``)."""

    normalize_advantages: bool = param(False, "standardise the leave-one-out advantages over each batch")

    def validate(self, prefix: str = "rloo") -> None:
        super().validate(prefix or "rloo")


@dataclass
class DPOConfig:
    """``params.yaml`` section ``dpo``: Direct Preference Optimization (``trl.DPOTrainer``) on preference pairs."""

    # --- where the pairs come from
    pair_source: str = param("auto", "'rank_lists' (the prepared train lists that carry a prompt), 'sampled' "
                             "(samples_per_prompt completions of the base per train prompt, ranked by the "
                             "reward), 'auto' = rank_lists when some list has a prompt, else sampled",
                             choices=("auto", "rank_lists", "sampled"))
    pairs: str = param("all", "pairs per list: 'all' cross-tier pairs, or 'best_vs_rest' (each text of the best "
                       "tier against each other text)", choices=("all", "best_vs_rest"))
    max_pairs: int = param(0, "keep at most this many pairs (a seeded random subset); 0 = all", min=0)
    samples_per_prompt: int = param(4, "sampled pairs: completions drawn per train prompt (K)", min=2)
    min_score_gap: float = param(0.0, "sampled pairs: pair two completions only when their scores differ by more "
                                 "than this", min=0.0)
    max_new_tokens: int = param(16, "sampled pairs: tokens per completion", min=1)
    temperature: float = param(1.0, "sampled pairs: sampling temperature", min=0.0, min_exclusive=True)
    top_k: int = param(0, "sampled pairs: top-k (0 = off)", min=0)
    top_p: float = param(1.0, "sampled pairs: nucleus mass (1.0 = off)", min=0.0, max=1.0, min_exclusive=True)
    reward_source: str = param("reward_model", "sampled pairs: rank by 'reward_model' or by the 'judge'",
                               choices=REWARD_SOURCES)
    score_normalization: str = param("none", "sampled pairs: reward-model score normalisation (a ranking does "
                                     "not change under it)", choices=NORMALIZATIONS)
    reward_batch_size: int = param(64, "texts per reward-model / judge call", min=1)

    # --- training
    steps: int = param(100, "optimiser steps (TRL max_steps); the pairs are cycled as needed", min=1)
    batch_size: int = param(16, "pairs per step", min=1)
    lr: float = param(5e-6, "AdamW learning rate", min=0.0, min_exclusive=True)
    lr_schedule: str = param("constant", "'constant', or 'linear' decay to 0 over `steps`",
                             choices=("constant", "linear"))
    max_grad_norm: float = param(1.0, "clip the global gradient norm to this before each step", min=0.0)
    beta: float = param(0.1, "DPO beta: the strength of the implicit KL to the base model", min=0.0,
                        min_exclusive=True)
    loss_type: str = param("sigmoid", "TRL DPO loss: 'sigmoid' (DPO), 'ipo', 'hinge', 'robust'",
                           choices=("sigmoid", "ipo", "hinge", "robust"))
    label_smoothing: float = param(0.0, "assumed share of flipped labels (cDPO / robust)", min=0.0, max=0.5)
    max_length: int = param(128, "tokens of [BOS] + prompt + completion + [EOS]; longer pairs are truncated at "
                            "the end (TRL keep_start)", min=2)
    gradient_checkpointing: bool = param(False, "recompute activations in the backward pass (TRL's default is on)")

    def validate(self, prefix: str = "dpo") -> None:
        """No cross-field constraints today."""
