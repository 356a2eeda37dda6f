"""The base causal LM: bootstrapped (char tokenizer + small GPT-2 pretrained here) or loaded.

``base.model: bootstrap`` builds a char-level tokenizer from the train split and pretrains a
small :class:`transformers.GPT2LMHeadModel` on the LM corpus; any other value is a Hugging Face
id or local path whose tokenizer and causal LM are loaded as they are (no training).
Both end as ``save_pretrained`` files that ``AutoModelForCausalLM`` / ``AutoTokenizer`` load.
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase, get_scheduler

from rlhf.distributed import all_sum, is_main, rank_and_world, shard
from rlhf.models.config import BaseConfig
from rlhf.tokenizer import build_char_tokenizer, encode_batch, load_tokenizer, pad_right


def load_causal_lm(path_or_id: str | Path) -> tuple[GPT2LMHeadModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer (local path or an id in the local Hugging Face cache).

    Raises ``FileNotFoundError`` naming the path when a local-looking path does not exist.
    """
    name = str(path_or_id)
    looks_local = name.startswith((".", "/", "~")) or Path(name).exists()
    if looks_local and not Path(name).expanduser().exists():
        raise FileNotFoundError(f"base.model: {name!r} does not exist; expected 'bootstrap', a local directory "
                                "written by save_pretrained, or a Hugging Face model id in the local cache")
    try:
        tok = load_tokenizer(name)
        model = AutoModelForCausalLM.from_pretrained(name)
    except OSError as e:
        raise FileNotFoundError(f"base.model: cannot load {name!r} ({e.__class__.__name__}: {str(e).splitlines()[0]}); "
                                "expected 'bootstrap', a local save_pretrained directory, or a model id in the "
                                "local Hugging Face cache (downloads are off: HF_HUB_OFFLINE=1)") from None
    align_special_ids(model, tok)
    return model, tok


def align_special_ids(model, tok: PreTrainedTokenizerBase) -> None:
    """Give ``model``'s config and generation config the tokenizer's EOS, BOS and pad ids where they lack them.

    An id that is missing or outside the model's vocabulary is replaced: GPT-2 Chinese checkpoints
    (``uer/gpt2-chinese-*``) keep GPT-2's ``bos/eos_token_id`` 50256 in a 21k vocabulary, so a plain
    ``generate`` of the saved base or policy would never stop; the pipeline's EOS is the
    tokenizer's (``[SEP]``). Ids that are in the vocabulary are kept (e.g. a list of stop ids).
    """
    vocab = model.get_input_embeddings().num_embeddings
    wanted = {"eos_token_id": tok.eos_token_id, "bos_token_id": tok.bos_token_id, "pad_token_id": tok.pad_token_id}
    for cfg in (model.config, getattr(model, "generation_config", None)):
        if cfg is None:
            continue
        for name, value in wanted.items():
            current = getattr(cfg, name, None)
            ids = current if isinstance(current, (list, tuple)) else [current]
            if value is not None and (current is None or any(i is None or not 0 <= int(i) < vocab for i in ids)):
                setattr(cfg, name, value)


def build_gpt2(cfg: BaseConfig, tok: PreTrainedTokenizerBase) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 sized by ``cfg`` for the vocabulary of ``tok`` (seed first)."""
    config = GPT2Config(
        vocab_size=len(tok), n_positions=cfg.n_positions, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, rng: random.Random,
                            bucket_batches: int = 50) -> list[list[int]]:
    """Shuffle indices, sort each window of ``bucket_batches`` batches by length, cut into batches.

    Texts of similar length share a batch, so padding stays small, while the order of batches
    stays random. Returns a list of index lists (the last may be shorter).
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * bucket_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def lm_loss(model: GPT2LMHeadModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
            reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy over the real tokens of a RIGHT-padded batch.

    input_ids, attention_mask: (batch, seq). ``reduction='mean'`` gives nats per predicted token,
    ``'sum'`` the total (for corpus perplexity).
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits  # (batch, seq, vocab)
    targets = input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)  # (batch, seq-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=-100, reduction=reduction)


@torch.inference_mode()
def perplexity(model: GPT2LMHeadModel, tok: PreTrainedTokenizerBase, texts: Sequence[str], *,
               max_length: int, batch_size: int = 64) -> float:
    """Corpus perplexity ``exp(total NLL / predicted tokens)`` of ``[BOS] text [EOS]`` sequences."""
    if not texts:
        raise ValueError("perplexity: no texts to score")
    model.eval()
    seqs = sorted(encode_batch(tok, texts, max_length=max_length), key=len)
    total, count = 0.0, 0
    for i in range(0, len(seqs), batch_size):
        ids, mask = pad_right(seqs[i:i + batch_size], tok.pad_token_id)
        total += lm_loss(model, ids.to(model.device), mask.to(model.device), reduction="sum").item()
        count += int(mask[:, 1:].sum())
    return math.exp(total / count)


def _distributed_backward(forward_model, seqs: Sequence[list[int]], batch: list[int], pad_id: int, accelerator,
                          micro_batches: int) -> tuple[float, int]:
    """Backward of one step's share of ``batch`` (see :func:`pretrain`); returns (global mean loss, global tokens)."""
    _, world = rank_and_world(accelerator)
    mine = shard(batch, accelerator)
    groups = [g for g in (mine[j::micro_batches] for j in range(micro_batches)) if g] or [batch[:1]]
    padded = [pad_right([seqs[i] for i in g], pad_id) for g in groups]
    local_predicted = sum(float(mask[:, 1:].sum()) for _, mask in padded) if mine else 0.0
    local_tokens = sum(float(mask.sum()) for _, mask in padded) if mine else 0.0
    predicted, n_tokens = all_sum(torch.tensor([local_predicted, local_tokens], dtype=torch.float64),
                                  accelerator).tolist()
    loss_sum = 0.0
    for j, (ids, mask) in enumerate(padded):
        sync = accelerator.no_sync(forward_model) if j < len(padded) - 1 else contextlib.nullcontext()
        with sync:
            total = lm_loss(forward_model, ids.to(accelerator.device), mask.to(accelerator.device), reduction="sum")
            if not mine:
                total = total * 0.0  # no text for this process in this step: take part, add nothing
            accelerator.backward(total * (world / max(predicted, 1.0)))  # the all-reduce averages over processes
            loss_sum += float(total.detach())
    return float(all_sum(torch.tensor([loss_sum], dtype=torch.float64), accelerator)[0]) / max(predicted, 1.0), \
        int(n_tokens)


def pretrain(model: GPT2LMHeadModel, tok: PreTrainedTokenizerBase, texts: Sequence[str], cfg: BaseConfig, *,
             seed: int, on_step: Callable[[int, dict], None] | None = None, progress: bool = True,
             accelerator=None, micro_batches: int = 1) -> dict:
    """Pretrain ``model`` on ``texts`` (each ``[BOS] text [EOS]``, truncated to ``cfg.max_length``).

    AdamW, linear warm-up then cosine decay, gradient clipping, length-bucketed batches.
    Calls ``on_step(step, {"train/loss", "train/lr"})`` every step. Returns a summary dict.

    ``accelerator`` (data parallel, N processes): every process draws the same batches of
    ``cfg.batch_size`` texts and forwards its strided share; the summed token losses are divided
    by the batch's global count of predicted tokens, so the step is the one-process step.
    ``micro_batches`` > 1 splits a process's share into that many forward/backward passes.
    Dropout is seeded with ``seed + rank``.
    """
    if not texts:
        raise ValueError("pretrain: the LM corpus is empty")
    seqs = encode_batch(tok, texts, max_length=cfg.max_length)
    lengths = [len(s) for s in seqs]
    rank, world = rank_and_world(accelerator)
    rng = random.Random(seed)
    torch.manual_seed(seed + rank)
    if accelerator is not None:
        model.to(accelerator.device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.learning_rate, betas=(0.9, 0.95))
    sched = get_scheduler("cosine", opt, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.steps)
    # the one-process path keeps its own arithmetic (mean loss), so the default run's numbers stay as they were
    plain = world == 1 and micro_batches == 1 and (accelerator is None or accelerator.mixed_precision == "no")
    forward_model = model
    if accelerator is not None:
        forward_model, opt = accelerator.prepare(model, opt)
    progress = progress and is_main(accelerator)
    model.train()
    batches: list[list[int]] = []
    tokens = 0
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="base: pretrain", disable=not progress, mininterval=2.0)
    loss_ema = None
    for step in bar:
        if not batches:
            batches = length_bucketed_batches(lengths, cfg.batch_size, rng)
        batch = batches.pop()
        opt.zero_grad(set_to_none=True)
        if plain:
            ids, mask = pad_right([seqs[i] for i in batch], tok.pad_token_id)
            loss = lm_loss(model, ids.to(model.device), mask.to(model.device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            tokens += int(mask.sum())
            value = loss.item()
        else:
            value, n_tokens = _distributed_backward(forward_model, seqs, batch, tok.pad_token_id, accelerator,
                                                    micro_batches)
            accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            tokens += n_tokens
        opt.step()
        sched.step()
        loss_ema = value if loss_ema is None else 0.95 * loss_ema + 0.05 * value
        bar.set_postfix(loss=f"{loss_ema:.3f}", refresh=False)
        if on_step is not None:
            on_step(step, {"train/loss": value, "train/lr": sched.get_last_lr()[0]})
    model.eval()
    seconds = time.perf_counter() - t0
    return {"train_loss_final": loss_ema, "train_seconds": seconds, "train_tokens": tokens,
            "tokens_per_second": tokens / seconds if seconds else 0.0}


def bootstrap_base(cfg: BaseConfig, train_texts: Sequence[str], *, seed: int,
                   on_step: Callable[[int, dict], None] | None = None, progress: bool = True,
                   accelerator=None, micro_batches: int = 1):
    """Build the char tokenizer from ``train_texts`` and pretrain a GPT-2 on them.

    Returns ``(model, tokenizer, summary)``.
    """
    tok = build_char_tokenizer(train_texts, vocab_size=cfg.vocab_size)
    torch.manual_seed(seed)
    model = build_gpt2(cfg, tok)
    summary = pretrain(model, tok, train_texts, cfg, seed=seed, on_step=on_step, progress=progress,
                       accelerator=accelerator, micro_batches=micro_batches)
    summary["vocab_size"] = len(tok)
    summary["parameters"] = sum(p.numel() for p in model.parameters())
    return model, tok, summary
