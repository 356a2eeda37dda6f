"""``params.yaml`` section ``base``: the starting point of the policy (see :mod:`rlhf.models.base_lm`)."""
from __future__ import annotations

from dataclasses import dataclass

from rlhf.config import ConfigError, param


@dataclass
class BaseConfig:
    """``params.yaml`` section ``base``: where the policy's starting point comes from."""

    model: str = param("bootstrap", "'bootstrap' (build a char tokenizer and pretrain a small GPT-2 here) "
                       "or a Hugging Face id / local path of a causal LM with its tokenizer")
    vocab_size: int = param(4000, "bootstrap: characters kept in the vocabulary (plus 5 special tokens)", min=16)
    n_layer: int = param(4, "bootstrap: transformer blocks", min=1, max=48)
    n_embd: int = param(256, "bootstrap: hidden width (a multiple of n_head)", min=8)
    n_head: int = param(4, "bootstrap: attention heads", min=1)
    n_positions: int = param(128, "bootstrap: longest sequence the model can take, in tokens", min=16)
    dropout: float = param(0.0, "bootstrap: dropout of embeddings, attention and residuals", min=0.0, max=0.9)
    max_length: int = param(64, "bootstrap: training texts are truncated to this many tokens (BOS and EOS included)",
                            min=4)
    batch_size: int = param(32, "bootstrap: texts per optimiser step", min=1)
    steps: int = param(1200, "bootstrap: optimiser steps", min=1)
    learning_rate: float = param(2e-3, "bootstrap: peak AdamW learning rate", min=0.0, min_exclusive=True)
    weight_decay: float = param(0.01, "bootstrap: AdamW weight decay", min=0.0)
    warmup_steps: int = param(100, "bootstrap: linear warm-up steps before the cosine decay", min=0)
    max_grad_norm: float = param(1.0, "bootstrap: gradient clipping norm", min=0.0, min_exclusive=True)
    eval_batch_size: int = param(64, "texts per batch when measuring dev perplexity", min=1)
    sample_new_tokens: int = param(24, "new tokens in the samples printed for the published prompts", min=1)
    threads: int = param(0, "torch CPU threads (0: leave torch's default)", min=0)

    def validate(self, prefix: str = "base") -> None:
        if self.n_embd % self.n_head:
            raise ConfigError(f"{prefix}.n_embd: got {self.n_embd}; expected a multiple of {prefix}.n_head={self.n_head}")
        if self.max_length > self.n_positions:
            raise ConfigError(f"{prefix}.max_length: got {self.max_length}; expected at most "
                              f"{prefix}.n_positions={self.n_positions}")

    @property
    def bootstrap(self) -> bool:
        return self.model == "bootstrap"
