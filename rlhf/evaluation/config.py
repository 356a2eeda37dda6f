"""The evaluation stage's settings: ``params.yaml`` section ``eval``."""
from __future__ import annotations

from dataclasses import dataclass

from rlhf.config import param
from rlhf.judge.config import JudgeConfig


@dataclass
class EvalConfig:
    """``params.yaml`` section ``eval``; the seed is the params' top-level ``seed``."""

    samples_per_prompt: int = param(16, "samples drawn per prompt from each model", min=1)
    n_heldout_prompts: int = param(32, "held-out (test split) prompts evaluated besides the published ones", min=0)
    max_new_tokens: int = param(16, "tokens generated per sample (as PPO)", min=1)
    temperature: float = param(1.0, "sampling temperature (as PPO)", min=0.0, min_exclusive=True)
    top_k: int = param(0, "top-k sampling; 0 = off (as PPO)", min=0)
    top_p: float = param(1.0, "nucleus sampling mass; 1.0 = off (as PPO)", min=0.0, max=1.0, min_exclusive=True)
    batch_size: int = param(64, "sequences per generate / forward call", min=1)
    max_kl: float = param(8.0, "promotion gate: largest mean KL(policy || base), nats per sample; keep it above "
                          "ppo.kl_target (a gate at the target fails about half the runs whose KL landed where the "
                          "controller aimed)", min=0.0)
    min_distinct_2_ratio: float = param(0.5, "promotion gate: the tuned policy's distinct-2 must be at least this "
                                        "fraction of the base model's (catches a collapsed, repetitive policy)",
                                        min=0.0, max=1.0)
    positive_threshold: float = param(0.5, "a sample counts as positive when its judge score is above this",
                                      min=0.0, max=1.0)
    judge: JudgeConfig = param(None, "the independent judge", factory=JudgeConfig)

