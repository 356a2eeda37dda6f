"""Toy reward functions for the PPO tests (not part of the library)."""
from __future__ import annotations

from typing import Sequence

import torch


class CharShareReward:
    """The share of ``char`` among the characters of ``prompt + completion``.

    The prompt part is fixed for a given prompt, so the reward rises only when completions use
    ``char`` more often: PPO should learn it within a few iterations.
    """

    def __init__(self, char: str):
        if len(char) != 1:
            raise ValueError(f"CharShareReward: char must be one character, got {char!r}")
        self.char = char

    def score(self, query_response_ids: torch.Tensor, attention_mask: torch.Tensor,
              texts: Sequence[str]) -> torch.Tensor:
        return torch.tensor([t.count(self.char) / max(len(t), 1) for t in texts], dtype=torch.float32)
