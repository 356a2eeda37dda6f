"""The base causal LM: bootstrapped (char tokenizer + small GPT-2 pretrained here) or loaded.

``base.model: bootstrap`` builds a char-level tokenizer from the train split and pretrains a
small :class:`transformers.GPT2LMHeadModel` on the LM corpus; any other value is a Hugging Face
id or local path whose tokenizer and causal LM are loaded as they are (no training).
Both end as ``save_pretrained`` files that ``AutoModelForCausalLM`` / ``AutoTokenizer`` load.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase, get_scheduler

from rlhf.config import ConfigError, param
from rlhf.tokenizer import build_char_tokenizer, decode, encode, encode_batch, load_tokenizer, pad_left, pad_right

PUBLISHED_PROMPTS = ["刚收到货，感觉", "这部电影很", "说实话，真的很", "这次购物总的来说体验很"]


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
    steps: int = param(600, "bootstrap: optimiser steps", min=1)
    learning_rate: float = param(1e-3, "bootstrap: peak AdamW learning rate", min=0.0, min_exclusive=True)
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


def position_ids_for(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that restart at 0 on each row's first real token, for left-padded batches.

    (batch, seq) -> (batch, seq); padded slots get 0 (they are masked out anyway).
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


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
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return model, tok


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
        total += lm_loss(model, ids, mask, reduction="sum").item()
        count += int(mask[:, 1:].sum())
    return math.exp(total / count)


@torch.inference_mode()
def sample_texts(model: GPT2LMHeadModel, tok: PreTrainedTokenizerBase, prompts: Sequence[str], *,
                 max_new_tokens: int, seed: int, num_return_sequences: int = 1) -> list[str]:
    """Sample completions (top_k=0, top_p=1, temperature 1) for ``prompts``; returns prompt+completion."""
    model.eval()
    torch.manual_seed(seed)
    ids, mask = pad_left([encode(tok, p, eos=False) for p in prompts], tok.pad_token_id)
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0, top_p=1.0,
                         max_new_tokens=max_new_tokens, num_return_sequences=num_return_sequences,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    prompt_rep = [p for p in prompts for _ in range(num_return_sequences)]
    return [p + decode(tok, row[ids.size(1):]) for p, row in zip(prompt_rep, out.tolist())]


def pretrain(model: GPT2LMHeadModel, tok: PreTrainedTokenizerBase, texts: Sequence[str], cfg: BaseConfig, *,
             seed: int, on_step: Callable[[int, dict], None] | None = None, progress: bool = True) -> dict:
    """Pretrain ``model`` on ``texts`` (each ``[BOS] text [EOS]``, truncated to ``cfg.max_length``).

    AdamW, linear warm-up then cosine decay, gradient clipping, length-bucketed batches.
    Calls ``on_step(step, {"train/loss", "train/lr"})`` every step. Returns a summary dict.
    """
    if not texts:
        raise ValueError("pretrain: the LM corpus is empty")
    seqs = encode_batch(tok, texts, max_length=cfg.max_length)
    lengths = [len(s) for s in seqs]
    rng = random.Random(seed)
    torch.manual_seed(seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.learning_rate, betas=(0.9, 0.95))
    sched = get_scheduler("cosine", opt, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.steps)
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
        ids, mask = pad_right([seqs[i] for i in batch], tok.pad_token_id)
        loss = lm_loss(model, ids, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        tokens += int(mask.sum())
        value = loss.item()
        loss_ema = value if loss_ema is None else 0.95 * loss_ema + 0.05 * value
        bar.set_postfix(loss=f"{loss_ema:.3f}", refresh=False)
        if on_step is not None:
            on_step(step, {"train/loss": value, "train/lr": sched.get_last_lr()[0]})
    model.eval()
    seconds = time.perf_counter() - t0
    return {"train_loss_final": loss_ema, "train_seconds": seconds, "train_tokens": tokens,
            "tokens_per_second": tokens / seconds if seconds else 0.0}


def bootstrap_base(cfg: BaseConfig, train_texts: Sequence[str], *, seed: int,
                   on_step: Callable[[int, dict], None] | None = None, progress: bool = True):
    """Build the char tokenizer from ``train_texts`` and pretrain a GPT-2 on them.

    Returns ``(model, tokenizer, summary)``.
    """
    tok = build_char_tokenizer(train_texts, vocab_size=cfg.vocab_size)
    torch.manual_seed(seed)
    model = build_gpt2(cfg, tok)
    summary = pretrain(model, tok, train_texts, cfg, seed=seed, on_step=on_step, progress=progress)
    summary["vocab_size"] = len(tok)
    summary["parameters"] = sum(p.numel() for p in model.parameters())
    return model, tok, summary
