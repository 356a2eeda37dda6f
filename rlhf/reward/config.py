"""``params.yaml`` section ``reward_model``: backbone, rank loss and training of the reward model.

The defaults train the bootstrapped 4-layer, 256-wide GPT-2 on ~3k rank lists of 4 short reviews
in one epoch (a few minutes on 2 CPU cores) to a test pairwise accuracy above 0.9.
"""
from __future__ import annotations

from dataclasses import dataclass

from rlhf.config import ConfigError, param

SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
ON_INVALID = ("error", "skip")


@dataclass
class RewardModelConfig:
    """``params.yaml`` section ``reward_model``."""

    backbone: str = param("base", "'base' (start from the base LM in models/base, InstructGPT's choice) or a "
                          "local save_pretrained directory / Hugging Face id in the local cache of any model "
                          "AutoModelForSequenceClassification can load (e.g. a BERT/ERNIE encoder: linear head "
                          "on the pooled output)")
    max_length: int = param(128, "longest sequence [BOS] + prompt + text + [EOS] in tokens; longer texts are "
                            "truncated (keeping BOS and EOS) and counted in the metrics", min=4)
    lists_per_batch: int = param(8, "rank lists per optimiser step; each text of those lists is forwarded once "
                                 "per step (see forward_max_tokens)", min=1)
    bucket_batches: int = param(50, "length bucketing: lists are shuffled, each window of this many batches is "
                                "sorted by length and cut into batches, batches are shuffled (1: no bucketing "
                                "beyond one batch)", min=1)
    forward_max_tokens: int = param(1024, "a step's texts are sorted by length and forwarded in chunks of at "
                                    "most this many padded tokens (0: all in one padded batch); each text is "
                                    "still forwarded once and there is one backward per step", min=0)
    learning_rate: float = param(5e-4, "peak AdamW learning rate", min=0.0, min_exclusive=True)
    weight_decay: float = param(0.0, "AdamW weight decay (not applied to biases and LayerNorm weights)", min=0.0)
    warmup_ratio: float = param(0.03, "fraction of the optimiser steps spent warming the learning rate up "
                                "linearly from 0", min=0.0, max=1.0)
    scheduler: str = param("linear", "learning-rate schedule after warm-up", choices=SCHEDULERS)
    max_grad_norm: float = param(1.0, "gradient clipping: largest global L2 norm (0: no clipping)", min=0.0)
    epochs: int = param(1, "passes over the train rank lists", min=1)
    max_steps: int = param(0, "stop after this many optimiser steps (0: run all epochs)", min=0)
    eval_every: int = param(100, "evaluate on the dev rank lists every this many steps, and at the end "
                            "(0: only at the end)", min=0)
    early_stopping_patience: int = param(0, "stop after this many dev evaluations without a better dev pairwise "
                                         "accuracy (0: never stop early)", min=0)
    margin: float = param(0.0, "rank-loss margin m: a pair's loss is -log sigmoid(r_w - r_l - m)", min=0.0)
    margin_per_tier_gap: bool = param(False, "multiply the margin by the number of tiers between winner and loser "
                                      "(a text two tiers apart must win by 2m)")
    center_coef: float = param(0.0, "reward centring: add coef * mean(r^2) over each list's texts (TRL's "
                               "center_rewards_coefficient idea), keeping scores near 0", min=0.0)
    disable_dropout: bool = param(True, "set every dropout probability of the backbone to 0 while training "
                                  "(rank losses on noisy scores learn slower; TRL does the same)")
    dropout: float | None = param(None, "dropout probability of every dropout layer of the backbone while training, "
                                  "set after disable_dropout (null: the backbone's own, zeroed by disable_dropout); "
                                  "a small reward model on a few thousand lists overfits in a few epochs without it",
                                  min=0.0, max=0.9)
    prefix_augment: float = param(0.0, "fraction of the train rank lists built from a labelled corpus (source "
                                  "'corpus') added once more with every text cut to a random prefix of at least "
                                  "prefix_min_chars characters (a review's opening carries its label): the model "
                                  "learns to rank unfinished texts, which PPO's completions and cut-off texts are; "
                                  "human and imported lists are never cut (0: off)", min=0.0, max=1.0)
    prefix_min_chars: int = param(10, "shortest prefix prefix_augment cuts a text to, in characters", min=1)
    batch_size_eval: int = param(64, "texts per forward when scoring dev/test texts", min=1)
    on_invalid_list: str = param("error", "a rank list with fewer than 2 texts or all texts in one tier: "
                                 "'error' (raise, naming the list) or 'skip' (drop it and count it)",
                                 choices=ON_INVALID)
    threads: int = param(0, "torch CPU threads (0: leave torch's default)", min=0)

    def validate(self, prefix: str = "reward_model") -> None:
        if not self.backbone.strip():
            raise ConfigError(f"{prefix}.backbone: got {self.backbone!r}; expected 'base' or a model path / id")
        if self.warmup_ratio >= 1.0:
            raise ConfigError(f"{prefix}.warmup_ratio: got {self.warmup_ratio}; expected a fraction below 1")
