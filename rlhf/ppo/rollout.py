"""Rollout: sample completions for a batch of prompts and record what PPO needs about them.

One rollout is two or three batched model calls, all under ``torch.inference_mode()``:

1. :func:`rlhf.sampling.sample`, the one sampler (KV-cached decoding over left-padded
   ``[BOS] + prompt`` ids, so every completion starts at the same column);
2. the old log-probs and values of the sampled tokens: for a GPT-2 policy taken from the decoding
   pass itself (the hidden state and scores that each token was drawn from: the same computation
   as a full forward up to float round-off, ~1e-6 in the log-probs), else one forward of the policy;
3. one forward of the reference model for its log-probs.

The forwards of a GPT-2 run padding-free (:func:`rlhf.ppo.model.packed_gpt2_hidden`).

Everything after a completion's first EOS is padding (mask 0); a completion that never emitted
EOS within ``max_new_tokens`` is kept whole and flagged in ``ended``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlhf.ppo.core import logprobs_from_logits
from rlhf.ppo.model import PolicyWithValueHead, response_logits
from rlhf.ppo.phases import Phases
from rlhf.sampling import decode_responses, encode_prompts, response_mask_after_eos, sample


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


@torch.inference_mode()
def rollout(policy: PolicyWithValueHead, ref: PreTrainedModel, tok: PreTrainedTokenizerBase,
            prompts: Sequence[str], *, max_new_tokens: int, temperature: float = 1.0, top_k: int = 0,
            top_p: float = 1.0, accelerator=None, phases: Phases | None = None,
            score_while_decoding: bool = True) -> Rollout:
    """Sample completions for ``prompts`` and compute old log-probs, values and reference log-probs.

    ``accelerator`` (data parallel): ``prompts`` are this process's share of the global batch; the
    samples are those one process would draw for the global batch (:func:`rlhf.sampling.sample`).
    ``phases``: times the sampling (``generate``) and the scoring passes (``score_policy``: old log-probs
    and values; ``score_ref``: reference log-probs).
    ``score_while_decoding``: take the old log-probs and values from the decoding loop when it runs
    (:func:`rlhf.sampling.gpt2_decode`; no ``score_policy`` phase then); False: always from a
    forward of the policy over the finished sequences, as :meth:`PolicyWithValueHead.forward`.
    """
    phases = phases if phases is not None else Phases()
    prompt_ids, prompt_mask = encode_prompts(tok, prompts)  # (batch, P)
    device = policy.device
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    scores = DecodingScores(policy, temperature) if score_while_decoding else None
    with phases("generate"):
        responses = sample(policy, prompt_ids, prompt_mask, max_new_tokens=max_new_tokens, temperature=temperature,
                           top_k=top_k, top_p=top_p, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                           accelerator=accelerator, record=scores)
    response_mask, ended = response_mask_after_eos(responses, tok.eos_token_id)  # (batch, G), (batch,)
    responses = responses.masked_fill(~response_mask, tok.pad_token_id)
    query_responses = torch.cat([prompt_ids, responses], dim=1)  # (batch, P + G)
    attention_mask = torch.cat([prompt_mask, response_mask.long()], dim=1)  # (batch, P + G)
    width = prompt_ids.shape[1]
    mask = response_mask.float()

    if scores is not None and len(scores.logprobs) == responses.shape[1]:  # one record per sampled token
        logprobs = torch.stack(scores.logprobs, dim=1) * mask  # (batch, G)
        values = torch.stack(scores.values, dim=1)  # (batch, G)
    else:  # sampled by generate (not a GPT-2), or asked for: one forward of the finished sequences
        with phases("score_policy"):
            logits, values = policy(query_responses, attention_mask, width)  # (batch, G, vocab), (batch, G)
            logprobs = logprobs_from_logits(scaled(logits, temperature), responses) * mask
            del logits
    with phases("score_ref"):
        ref_logits = response_logits(ref, query_responses, attention_mask, width)  # (batch, G, vocab)
        ref_logprobs = logprobs_from_logits(scaled(ref_logits, temperature), responses) * mask
    return Rollout(query_responses=query_responses, attention_mask=attention_mask, prompt_width=width,
                   response_mask=mask, ended=ended, logprobs=logprobs, ref_logprobs=ref_logprobs,
                   values=values * mask)


class DecodingScores:
    """The old log-probs and values of each sampled token, from the decoding loop (``record`` of
    :func:`rlhf.sampling.gpt2_decode`): ``log softmax(scores / temperature)`` at the token (as
    :func:`logprobs_from_logits`; top-k / top-p do not enter, as they do not in the forward), and the
    value head on the hidden state the token was drawn from. One ``(batch,)`` tensor per step in each list."""

    def __init__(self, policy: PolicyWithValueHead, temperature: float):
        self.value_head, self.temperature = policy.value_head, temperature
        self.logprobs: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def __call__(self, hidden: torch.Tensor, scores: torch.Tensor, tokens: torch.Tensor) -> None:
        self.logprobs.append(logprobs_from_logits(scaled(scores, self.temperature), tokens))
        self.values.append(self.value_head(hidden).squeeze(-1))


def scaled(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature``, without a pass over the vocabulary when it is 1 (x / 1 is x exactly)."""
    return logits if temperature == 1.0 else logits / temperature


def decode_completions(tok: PreTrainedTokenizerBase, batch: Rollout) -> list[str]:
    """The completion texts of a rollout (special tokens and padding dropped)."""
    return decode_responses(tok, batch.responses, batch.response_mask)
