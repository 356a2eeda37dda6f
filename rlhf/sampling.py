"""The one sampler: PPO rollouts, evaluation, the base stage's samples, the labelling app and ``rlhf generate``.

A prompt is ``[BOS] + prompt`` with no EOS, left-padded, so every completion starts at the same
column (``rlhf/tokenizer.py``). ``generate`` runs greedy with the KV cache over scores that our
own processors turned into one sampled token per row (:class:`InverseCDFSampler`): the policy is
judged with the sampler it was trained with. A GPT-2 skips ``generate``'s per-token machinery
(:func:`gpt2_decode`: the same ops on the same shapes, so the same tokens bit for bit; ~12% less
time for a PPO rollout of 64 x 16 tokens on 2 cores). A response is masked after its first EOS (the EOS
itself counts: it is the model's decision to stop); a response that never emitted EOS within
``max_new_tokens`` is kept whole.

Layers, each built on the one before:

- :func:`sample`: one batch of token ids in, response ids out (torch's global RNG);
- :func:`sample_responses`: a list of prompts, batched, with masks (seed the global RNG first);
- :func:`sample_completions`: texts in, ``n`` completion texts per prompt out, seeded without
  touching the caller's RNG.
"""
from __future__ import annotations

import logging
import math
from typing import Callable, NamedTuple, Sequence

import torch
from tqdm.auto import tqdm
from transformers import (LogitsProcessor, LogitsProcessorList, PreTrainedTokenizerBase, TemperatureLogitsWarper,
                          TopKLogitsWarper, TopPLogitsWarper)

from rlhf.models.positions import max_positions
from rlhf.tokenizer import decode, encode_batch, pad_left


# ``record(hidden, scores, tokens)`` of :func:`gpt2_decode`: one call per sampled token
StepRecorder = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


def encode_prompts(tok: PreTrainedTokenizerBase, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[BOS] + prompt`` ids, left-padded: ``(input_ids, attention_mask)``, each ``(batch, P)`` long."""
    return pad_left(encode_batch(tok, prompts, eos=False), tok.pad_token_id)


def response_mask_after_eos(responses: torch.Tensor, eos_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask of the tokens up to and including each row's first EOS, and whether an EOS occurred.

    ``mask[b, t]`` is True iff no EOS occurs in ``responses[b, :t]``. Shapes ``(batch, G)`` ->
    ``(mask (batch, G) bool, ended (batch,) bool)``.
    """
    is_eos = responses == eos_token_id
    eos_before = is_eos.long().cumsum(-1) - is_eos.long()  # EOS count strictly before t
    return eos_before == 0, is_eos.any(-1)


def decode_responses(tok: PreTrainedTokenizerBase, responses: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """Text of each response ``(batch, G)`` over its masked-in tokens; special tokens (the EOS) are no text."""
    return [decode(tok, [t for t, keep in zip(row, m) if keep])
            for row, m in zip(responses.tolist(), mask.bool().tolist())]


class InverseCDFSampler(LogitsProcessor):
    """Draw one token per row from ``softmax(scores)`` and return scores whose argmax is that token.

    Inverse-CDF sampling needs one uniform number per row (``torch.multinomial`` draws one
    exponential per vocabulary entry: 64 x 4k of them per step, the costliest op of sampling on
    CPU). Used as the last logits processor of a greedy ``generate``, it makes ``generate`` sample
    with the KV cache and everything else it does (EOS, padding, early stop) unchanged.

    Data parallel (``total_rows``, ``rows``): this process holds rows ``rows`` of a global batch of
    ``total_rows``; every process draws the uniforms of the whole global batch and keeps its rows,
    so the samples are those one process would draw for the global batch, whatever the process
    count. ``draws`` counts the steps drawn (see :func:`sample`'s catch-up).
    """

    def __init__(self, total_rows: int | None = None, rows: slice | None = None):
        self.total_rows, self.rows = total_rows, rows
        self.draws = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        tokens = self.draw(scores)  # (batch, 1)
        return torch.full_like(scores, -math.inf).scatter_(1, tokens, 0.0)

    def draw(self, scores: torch.Tensor) -> torch.Tensor:
        """One token per row of ``scores`` ``(batch, V)``: ``(batch, 1)`` ids."""
        cdf = torch.softmax(scores.float(), dim=-1).cumsum(-1)  # (batch, V)
        u = uniforms(self.total_rows or cdf.shape[0], cdf.device)  # (total, 1)
        self.draws += 1
        if self.rows is not None:
            u = u[self.rows]  # (batch, 1)
        u = u * cdf[:, -1:]
        return torch.searchsorted(cdf, u, right=True).clamp(max=cdf.shape[1] - 1)  # first index with cdf > u


def uniforms(n: int, device) -> torch.Tensor:
    """``(n, 1)`` float32 uniforms from torch's global RNG of ``device`` (one sampling step's draw)."""
    return torch.rand(n, 1, device=device, dtype=torch.float32)


def sampling_processors(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                        sampler: InverseCDFSampler | None = None) -> LogitsProcessorList:
    """Temperature, top-k and top-p warpers (only those that change anything), then the sampler."""
    processors = LogitsProcessorList()
    if temperature != 1.0:
        processors.append(TemperatureLogitsWarper(temperature))
    if top_k > 0:
        processors.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p))
    processors.append(sampler if sampler is not None else InverseCDFSampler())
    return processors


class _NoPaddingWarning:
    """Drops transformers' "We strongly recommend passing in an `attention_mask`" warning.

    :func:`sample` always passes the mask. ``generate`` itself drops a mask of all ones (no
    padding), then a row that has ended feeds ``pad_token_id`` to the next step and the model
    warns about padding without a mask: wrong here (a finished row's tokens are discarded), and
    ``rlhf generate`` printed it on the terminal.
    """

    def filter(self, record) -> bool:
        return "strongly recommend passing in an `attention_mask`" not in record.getMessage()


logging.getLogger("transformers.modeling_utils").addFilter(_NoPaddingWarning())


def check_fits(model, prompt_tokens: int, max_new_tokens: int) -> None:
    """``ValueError`` naming both numbers when ``prompt_tokens + max_new_tokens`` exceed the model's positions."""
    limit = max_positions(model)
    if limit is not None and prompt_tokens + max_new_tokens > limit:
        raise ValueError(f"prompt of {prompt_tokens} tokens + max_new_tokens={max_new_tokens} exceeds the model's "
                         f"{limit} positions; shorten the prompt or max_new_tokens")


@torch.inference_mode()
def sample(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, max_new_tokens: int,
           temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, eos_token_id: int,
           pad_token_id: int, accelerator=None, record: StepRecorder | None = None) -> torch.Tensor:
    """Sample one completion per left-padded prompt ``(batch, P)`` with the KV cache.

    ``model``: a causal LM, or anything with its ``generate`` and ``config`` (the PPO policy).
    Columns that are padding in every row are dropped first. Returns the response ids
    ``(batch, G)``, ``G <= max_new_tokens`` (``generate`` stops early when every row has emitted
    EOS); tokens after a row's EOS are ``pad_token_id``. Uses torch's global RNG, so seeding it
    makes the result reproducible. Raises ``ValueError`` when the longest prompt plus
    ``max_new_tokens`` does not fit the model's positions.

    ``accelerator`` (data parallel, N processes): the rows are this process's strided share
    ``global[rank::N]`` of a global batch; the uniforms are drawn for the whole global batch
    (:class:`InverseCDFSampler`), and a process whose rows all ended early draws the steps the
    others still took, so torch's RNG stays the same on every process and the samples equal a
    one-process run of the global batch.

    ``record``: passed to :func:`gpt2_decode` (called once per sampled token) when the GPT-2 loop
    decodes; ``generate`` calls it never, so a caller checks how often it was called.
    """
    from rlhf.distributed import all_max, all_sum, rank_and_world

    rank, world = rank_and_world(accelerator)
    width = max(int(prompt_mask.sum(-1).max()), 1)  # the longest prompt, in tokens
    check_fits(model, width, max_new_tokens)
    prompt_ids, prompt_mask = prompt_ids[:, -width:], prompt_mask[:, -width:]
    sampler = InverseCDFSampler()
    if world > 1:
        total = int(all_sum(torch.tensor([float(prompt_ids.shape[0])]), accelerator))
        sampler = InverseCDFSampler(total_rows=total, rows=slice(rank, None, world))
    synced = world > 1 and str(getattr(accelerator, "distributed_type", "")).endswith(("DEEPSPEED", "FSDP"))
    lm = getattr(model, "lm", model)  # the PPO policy's LM
    if not synced and decodable(lm):
        out = gpt2_decode(lm, prompt_ids, prompt_mask, max_new_tokens=max_new_tokens,
                          processors=sampling_processors(temperature, top_k, top_p, sampler), eos_token_id=eos_token_id,
                          pad_token_id=pad_token_id, record=record)
        if world > 1:
            for _ in range(int(all_max(float(sampler.draws), accelerator)) - sampler.draws):
                uniforms(sampler.total_rows, prompt_ids.device)
        return out
    out = model.generate(
        input_ids=prompt_ids, attention_mask=prompt_mask, max_new_tokens=max_new_tokens,
        # Greedy over scores that our own processors turned into one sampled token per row: in greedy
        # mode generate adds no warpers of its own (its default top_k=50 would otherwise apply).
        do_sample=False, logits_processor=sampling_processors(temperature, top_k, top_p, sampler),
        eos_token_id=eos_token_id, pad_token_id=pad_token_id, use_cache=True,
        # ZeRO-3 / FSDP shard the weights: every process must take part in every forward
        synced_gpus=synced,
    )
    if world > 1:  # catch up with the processes that sampled longer
        for _ in range(int(all_max(float(sampler.draws), accelerator)) - sampler.draws):
            uniforms(sampler.total_rows, prompt_ids.device)
    return out[:, width:]


def decodable(lm) -> bool:
    """Whether :func:`gpt2_decode` samples what ``generate`` would for ``lm``: a GPT-2 LM with sdpa attention,
    no cross-attention, no active dropout."""
    config = getattr(lm, "config", None)
    if type(lm).__name__ != "GPT2LMHeadModel" or config is None:
        return False
    dropout = max(config.embd_pdrop, config.attn_pdrop, config.resid_pdrop) if lm.training else 0.0
    return getattr(config, "_attn_implementation", None) == "sdpa" and not config.add_cross_attention and dropout == 0


@torch.inference_mode()
def gpt2_decode(lm, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *, max_new_tokens: int,
                processors: LogitsProcessorList, eos_token_id: int, pad_token_id: int,
                record: StepRecorder | None = None) -> torch.Tensor:
    """``generate``'s greedy decoding over ``processors`` (the last one an :class:`InverseCDFSampler`) for a GPT-2,
    without its per-token machinery: the same ops on the same shapes, so the same tokens bit for bit.

    One forward of the left-padded prompts ``(batch, P)`` fills a static KV cache (one buffer per
    block with room for ``P + max_new_tokens`` positions), then one forward per token of the
    ``(batch, 1)`` last tokens, whose keys and values are written into the next column; attention
    reads the filled columns, the values ``generate``'s growing cache holds (without copying the
    past at every step); the LM head runs on the last position only. A row that has emitted EOS feeds
    ``pad_token_id`` from then on; the loop stops when every row has. Returns ``(batch, G)``.

    ``record(hidden, scores, tokens)``, when given, is called after each token is drawn with the
    final hidden state ``(batch, hidden)`` (after ``ln_f``) of the position that predicted it, the
    LM's float32 scores ``(batch, V)`` there before any warper, and the tokens ``(batch,)``: what PPO's
    old log-probs and values are (:func:`rlhf.ppo.rollout.rollout`), without a second forward.
    """
    model = lm.transformer
    sampler = processors[-1]
    warpers = processors[:-1]
    batch, width = prompt_ids.shape
    device = prompt_ids.device
    real = prompt_mask.bool()
    padded = not bool(real.all())
    positions = (prompt_mask.long().cumsum(-1) - 1).clamp(min=0)  # (batch, P)
    # the masks generate builds for sdpa: none without padding (causal prefill), else causal & padding
    mask = None
    if padded:
        steps = torch.arange(width, device=device)
        mask = ((steps[:, None] >= steps[None, :]) & real[:, None, None, :]) | torch.eye(width, dtype=torch.bool,
                                                                                          device=device)
    cache: list[tuple[torch.Tensor, torch.Tensor]] = []  # per block: keys and values (batch, heads, P + T, d)

    def forward(x: torch.Tensor, mask: torch.Tensor | None, slot: int | None) -> torch.Tensor:
        """``x`` the prompts' embeddings (``slot`` None: fill the cache) or one token's, whose keys and values go to
        cache column ``slot``."""
        for i, block in enumerate(model.h):
            attn = block.attn
            residual = x
            q, k, v = attn.c_attn(block.ln_1(x)).split(attn.split_size, dim=2)
            q, k, v = (t.view(*t.shape[:-1], -1, attn.head_dim).transpose(1, 2) for t in (q, k, v))
            if slot is None:  # a static cache: room for every token, written in place (no copy of the past per step)
                keys = k.new_empty(batch, k.shape[1], width + max_new_tokens, k.shape[3])
                values = torch.empty_like(keys)
                keys[:, :, :width], values[:, :, :width] = k, v
                cache.append((keys, values))
            else:
                keys, values = cache[i]
                keys[:, :, slot:slot + 1], values[:, :, slot:slot + 1] = k, v
                k, v = keys[:, :, :slot + 1], values[:, :, :slot + 1]
            out = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=0.0, scale=attn.scaling,
                is_causal=mask is None and q.shape[2] > 1)
            out = out.transpose(1, 2).contiguous()
            out = attn.c_proj(out.reshape(*out.shape[:-2], -1).contiguous())
            x = out + residual
            x = x + block.mlp(block.ln_2(x))
        hidden = model.ln_f(x)[:, -1:, :]  # (batch, 1, hidden)
        return hidden[:, -1], lm.lm_head(hidden)[:, -1, :].to(copy=True, dtype=torch.float32)  # (batch, V)

    hidden, scores = forward(model.wte(prompt_ids) + model.wpe(positions), mask, slot=None)
    lengths = prompt_mask.long().sum(-1, keepdim=True)  # (batch, 1) the next token's position
    key_mask = real
    sequences = prompt_ids
    unfinished = torch.ones(batch, dtype=torch.long, device=device)
    out = []
    for step in range(max_new_tokens):
        raw = scores
        for warper in warpers:
            scores = warper(sequences, scores)
        tokens = sampler.draw(scores)[:, 0]  # (batch,)
        tokens = tokens * unfinished + pad_token_id * (1 - unfinished)
        if record is not None:
            record(hidden, raw, tokens)
        out.append(tokens)
        unfinished = unfinished & (tokens != eos_token_id).long()
        if step == max_new_tokens - 1 or not bool(unfinished.any()):
            break
        if warpers:
            sequences = torch.cat([sequences, tokens[:, None]], dim=1)
        key_mask = torch.cat([key_mask, key_mask.new_ones(batch, 1)], dim=1)
        step_mask = key_mask[:, None, None, :] if padded else None
        x = model.wte(tokens[:, None]) + model.wpe(lengths + step)
        hidden, scores = forward(x, step_mask, slot=width + step)
    return torch.stack(out, dim=1)


class Responses(NamedTuple):
    """What :func:`sample_responses` drew: ``n`` prompts of width ``P``, ``T = max_new_tokens``."""

    prompt_ids: torch.Tensor     # (n, P) [BOS] + prompt, left-padded
    prompt_mask: torch.Tensor    # (n, P) long
    response_ids: torch.Tensor   # (n, T) sampled ids; pad after the first EOS and up to T
    response_mask: torch.Tensor  # (n, T) bool: up to and including the first EOS
    ended: torch.Tensor          # (n,) bool: the response emitted EOS within T tokens


def sample_responses(model, tok: PreTrainedTokenizerBase, prompts: Sequence[str], *, max_new_tokens: int,
                     temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, batch_size: int = 64,
                     progress: bool = False) -> Responses:
    """One response per prompt, ``batch_size`` prompts per :func:`sample` call; tensors on the CPU.

    The model runs in eval mode (its mode is restored afterwards). Uses torch's global RNG: seed
    it first (:func:`sample_completions` does, without disturbing the caller's state).
    """
    if not prompts:
        raise ValueError("sample_responses: no prompts")
    prompt_ids, prompt_mask = encode_prompts(tok, prompts)  # (n, P)
    responses = torch.full((len(prompts), max_new_tokens), tok.pad_token_id, dtype=torch.long)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in tqdm(range(0, len(prompts), batch_size), desc="sampling", disable=not progress):
            sl = slice(start, start + batch_size)
            out = sample(model, prompt_ids[sl].to(device), prompt_mask[sl].to(device), max_new_tokens=max_new_tokens,
                         temperature=temperature, top_k=top_k, top_p=top_p, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)  # (b, <= T)
            responses[sl, :out.shape[1]] = out.cpu()
    finally:
        model.train(was_training)
    mask, ended = response_mask_after_eos(responses, tok.eos_token_id)
    return Responses(prompt_ids, prompt_mask, responses.masked_fill(~mask, tok.pad_token_id), mask, ended)


def sample_completions(model, tok: PreTrainedTokenizerBase, prompts: Sequence[str], n: int = 1,
                       max_new_tokens: int = 16, seed: int = 0, temperature: float = 1.0, top_k: int = 0,
                       top_p: float = 1.0, batch_size: int = 256) -> list[list[str]]:
    """``n`` sampled completions for each prompt: ``result[i][j]`` is the j-th one for ``prompts[i]``.

    A completion is the text after the prompt, up to its first EOS (not part of the text).
    Seeded with ``seed`` on a fork of torch's RNG: the caller's global RNG state is left as it
    was, and the same seed gives the same completions.
    """
    if n < 1:
        raise ValueError(f"sample_completions: n must be >= 1, got {n}")
    if not prompts:
        return []
    rows = [p for p in prompts for _ in range(n)]  # prompt i's copies are rows i*n .. i*n + n - 1
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        out = sample_responses(model, tok, rows, max_new_tokens=max_new_tokens, temperature=temperature,
                               top_k=top_k, top_p=top_p, batch_size=batch_size)
    texts = decode_responses(tok, out.response_ids, out.response_mask)
    return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]
