"""Rollout: sample completions for a batch of prompts and record what PPO needs about them.

One rollout is three batched model calls, all under ``torch.inference_mode()``:

1. ``generate`` with the KV cache (left-padded ``[BOS] + prompt`` ids, so every completion starts
   at the same column);
2. one forward of the policy for the old log-probs and values of the sampled tokens;
3. one forward of the reference model for its log-probs.

Everything after a completion's first EOS is padding (mask 0); a completion that never emitted
EOS within ``max_new_tokens`` is kept whole and flagged in ``ended``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import (LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase,
                          TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

from rlhf.ppo.core import logprobs_from_logits
from rlhf.ppo.model import PolicyWithValueHead, response_logits
from rlhf.tokenizer import decode, encode_batch, pad_left


@dataclass
class Rollout:
    """One batch of episodes. ``P`` = prompt width (left-padded), ``G`` = generated length."""

    query_responses: torch.Tensor  # (batch, P + G) prompt ids left-padded, then response, pad after EOS
    attention_mask: torch.Tensor  # (batch, P + G) 1 on real tokens (prompt and response up to EOS)
    prompt_width: int  # P
    response_mask: torch.Tensor  # (batch, G) float, 1 up to and including the first EOS
    ended: torch.Tensor  # (batch,) bool, the completion emitted EOS
    logprobs: torch.Tensor  # (batch, G) log pi_old(token) of the sampled tokens (0 where masked)
    ref_logprobs: torch.Tensor  # (batch, G) log pi_ref(token)
    values: torch.Tensor  # (batch, G) V_old of the state before each token (0 where masked)

    @property
    def responses(self) -> torch.Tensor:
        """Response ids ``(batch, G)`` (pad after EOS)."""
        return self.query_responses[:, self.prompt_width:]

    def __len__(self) -> int:
        return self.query_responses.shape[0]


def encode_prompts(tok: PreTrainedTokenizerBase, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[BOS] + prompt`` ids, left-padded: ``(input_ids, attention_mask)``, each ``(batch, P)``."""
    return pad_left(encode_batch(tok, prompts, eos=False), tok.pad_token_id)


def response_mask_after_eos(responses: torch.Tensor, eos_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask of the tokens up to and including each row's first EOS, and whether an EOS occurred.

    ``mask[b, t] = 1`` iff no EOS occurs in ``responses[b, :t]``. Shapes ``(batch, G)`` ->
    ``(mask (batch, G) bool, ended (batch,) bool)``.
    """
    is_eos = responses == eos_token_id
    eos_before = is_eos.long().cumsum(-1) - is_eos.long()  # EOS count strictly before t
    return eos_before == 0, is_eos.any(-1)


class InverseCDFSampler(LogitsProcessor):
    """Draw one token per row from ``softmax(scores)`` and return scores whose argmax is that token.

    Inverse-CDF sampling needs one uniform number per row (``torch.multinomial`` draws one
    exponential per vocabulary entry: 64 x 4k of them per step, the costliest op of sampling on
    CPU). Used as the last logits processor of a greedy ``generate``, it makes ``generate`` sample
    with the KV cache and everything else it does (EOS, padding, early stop) unchanged.
    """

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        cdf = torch.softmax(scores.float(), dim=-1).cumsum(-1)  # (batch, V)
        u = torch.rand(cdf.shape[0], 1, device=cdf.device, dtype=cdf.dtype) * cdf[:, -1:]  # (batch, 1)
        tokens = torch.searchsorted(cdf, u, right=True).clamp(max=cdf.shape[1] - 1)  # first index with cdf > u
        return torch.full_like(scores, -math.inf).scatter_(1, tokens, 0.0)


def sampling_processors(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> LogitsProcessorList:
    """Temperature, top-k and top-p warpers (only those that change anything), then the sampler."""
    processors = LogitsProcessorList()
    if temperature != 1.0:
        processors.append(TemperatureLogitsWarper(temperature))
    if top_k > 0:
        processors.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p))
    processors.append(InverseCDFSampler())
    return processors


@torch.inference_mode()
def sample(policy: PolicyWithValueHead | PreTrainedModel, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
           *, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           eos_token_id: int, pad_token_id: int) -> torch.Tensor:
    """Sample one completion per (left-padded) prompt with the KV cache.

    Returns the response ids ``(batch, G)``, ``G <= max_new_tokens`` (``generate`` stops early
    when every row has emitted EOS); tokens after a row's EOS are ``pad_token_id``.
    Sampling uses torch's global RNG, so ``seed_everything`` makes it reproducible.
    """
    out = policy.generate(
        input_ids=prompt_ids, attention_mask=prompt_mask, max_new_tokens=max_new_tokens,
        # Greedy over scores that our own processors turned into one sampled token per row: in greedy
        # mode generate adds no warpers of its own (its default top_k=50 would otherwise apply).
        do_sample=False, logits_processor=sampling_processors(temperature, top_k, top_p),
        eos_token_id=eos_token_id, pad_token_id=pad_token_id, use_cache=True,
    )
    return out[:, prompt_ids.shape[1]:]


@torch.inference_mode()
def rollout(policy: PolicyWithValueHead, ref: PreTrainedModel, tok: PreTrainedTokenizerBase,
            prompts: Sequence[str], *, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
            top_p: float = 1.0) -> Rollout:
    """Sample completions for ``prompts`` and compute old log-probs, values and reference log-probs."""
    prompt_ids, prompt_mask = encode_prompts(tok, prompts)  # (batch, P)
    device = policy.device
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    responses = sample(policy, prompt_ids, prompt_mask, max_new_tokens=max_new_tokens, temperature=temperature,
                       top_k=top_k, top_p=top_p, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    response_mask, ended = response_mask_after_eos(responses, tok.eos_token_id)  # (batch, G), (batch,)
    responses = responses.masked_fill(~response_mask, tok.pad_token_id)
    query_responses = torch.cat([prompt_ids, responses], dim=1)  # (batch, P + G)
    attention_mask = torch.cat([prompt_mask, response_mask.long()], dim=1)  # (batch, P + G)
    width = prompt_ids.shape[1]
    mask = response_mask.float()

    logits, values = policy(query_responses, attention_mask, width)  # (batch, G, vocab), (batch, G)
    logprobs = logprobs_from_logits(logits / temperature, responses) * mask
    del logits
    ref_logits = response_logits(ref, query_responses, attention_mask, width)  # (batch, G, vocab)
    ref_logprobs = logprobs_from_logits(ref_logits / temperature, responses) * mask
    return Rollout(query_responses=query_responses, attention_mask=attention_mask, prompt_width=width,
                   response_mask=mask, ended=ended, logprobs=logprobs, ref_logprobs=ref_logprobs,
                   values=values * mask)


def decode_completions(tok: PreTrainedTokenizerBase, batch: Rollout) -> list[str]:
    """The completion texts of a rollout (special tokens and padding dropped)."""
    rows = batch.responses.tolist()
    masks = batch.response_mask.bool().tolist()
    return [decode(tok, [t for t, keep in zip(row, m) if keep]) for row, m in zip(rows, masks)]
