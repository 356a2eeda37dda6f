"""Sampling completions from a trained policy (used by ``rlhf generate`` and evaluation)."""
from __future__ import annotations

from typing import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlhf.ppo.rollout import encode_prompts, response_mask_after_eos, sample
from rlhf.tokenizer import decode


def sample_completions(model: PreTrainedModel | torch.nn.Module, tok: PreTrainedTokenizerBase,
                       prompts: Sequence[str], n: int = 1, max_new_tokens: int = 16, seed: int = 0,
                       temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                       batch_size: int = 256) -> list[list[str]]:
    """``n`` sampled completions for each prompt: ``result[i][j]`` is the j-th one for ``prompts[i]``.

    Prompts are encoded as ``[BOS] + prompt`` (left-padded, batched up to ``batch_size`` rows per
    ``generate`` call, KV cache on); a completion stops at its first EOS, which is not part of
    the returned text. Seeded with ``seed`` without disturbing the caller's global RNG state.
    """
    if n < 1:
        raise ValueError(f"sample_completions: n must be >= 1, got {n}")
    rows = [p for p in prompts for _ in range(n)]  # prompt i's copies are rows i*n .. i*n + n - 1
    texts: list[str] = []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in range(0, len(rows), batch_size):
            ids, mask = encode_prompts(tok, rows[start:start + batch_size])
            responses = sample(model, ids.to(device), mask.to(device), max_new_tokens=max_new_tokens,
                               temperature=temperature, top_k=top_k, top_p=top_p,
                               eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
            keep, _ = response_mask_after_eos(responses, tok.eos_token_id)
            for row, m in zip(responses.tolist(), keep.tolist()):
                texts.append(decode(tok, [t for t, k in zip(row, m) if k]))
    model.train(was_training)
    return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]
