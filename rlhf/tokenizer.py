"""Char-level, BERT-style tokenizer, and the one place that decides how texts become ids.

Convention used in LM pretraining, reward modelling, PPO and evaluation alike:

* a sequence is ``[BOS] + text + [EOS]``; ``[BOS]`` is the tokenizer's ``bos_token`` (``[CLS]``
  for ours and for GPT-2 Chinese checkpoints), ``[EOS]`` its ``eos_token`` (``[SEP]``);
* a tokenizer without a BOS (Qwen2, byte-level BPE tokenizers trained with ``tokenizers``) starts
  every sequence with its EOS instead (:func:`start_ids`): GPT-2 and Qwen2 separate documents with
  ``<|endoftext|>``, so what follows it is what such a model saw at a document's start, and an
  empty prompt is still one token the model can continue;
* prompts are ``[BOS] + text`` (no EOS), so a completion continues them;
* a tokenizer without a pad token pads with its EOS (:func:`ensure_special_tokens`); our code tells
  padding apart by the attention mask, never by comparing ids with the pad id (transformers'
  causal-LM sequence classifiers do, to find the last token: ``rlhf/reward/model.py``);
* ``token_type_ids`` are never passed to a GPT-2 (it would add them to the word embeddings).
"""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Iterable, Sequence

from transformers import AutoTokenizer, BertTokenizerFast, PreTrainedTokenizerBase

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_char_tokenizer(texts: Iterable[str], *, vocab_size: int = 4000, min_count: int = 1) -> BertTokenizerFast:
    """Build a char-level BERT-style tokenizer from ``texts``.

    Keeps the ``vocab_size - len(SPECIAL_TOKENS)`` most frequent non-space characters seen at
    least ``min_count`` times (ties broken by first appearance, so the result is deterministic),
    plus ``##x`` continuations of ASCII letters/digits because the BERT pre-tokenizer splits
    ASCII runs into word pieces. Built from a vocab dict: ``BertTokenizerFast(vocab_file=...)``
    can silently keep only the special tokens in transformers 5 (DESIGN.md §9).
    """
    counts: collections.Counter[str] = collections.Counter()
    for text in texts:
        counts.update(text)
    chars = [c for c, n in counts.most_common() if n >= min_count and not c.isspace() and c not in SPECIAL_TOKENS]
    budget = max(vocab_size - len(SPECIAL_TOKENS), 0)
    kept = chars[:budget]
    words = SPECIAL_TOKENS + kept + ["##" + c for c in kept if c.isascii() and c.isalnum()]
    vocab = {w: i for i, w in enumerate(words)}
    tok = BertTokenizerFast(
        vocab=vocab, do_lower_case=False, tokenize_chinese_chars=True, strip_accents=False,
        pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
        bos_token="[CLS]", eos_token="[SEP]",
    )
    tok.padding_side = "left"
    tok.model_input_names = ["input_ids", "attention_mask"]
    if len(tok) != len(words):
        raise RuntimeError(f"tokenizer kept {len(tok)} of {len(words)} vocab entries; refusing a broken tokenizer")
    return tok


def load_tokenizer(path_or_id: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer saved with ``save_pretrained`` (or a hub id in the local cache).

    Fills in what GPT-style generation needs: a pad token (the EOS when none exists), an EOS
    (``[SEP]`` for BERT-style vocabularies) and left padding.
    """
    tok = AutoTokenizer.from_pretrained(str(path_or_id))
    ensure_special_tokens(tok)
    return tok


def ensure_special_tokens(tok: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Give ``tok`` the EOS, BOS and pad tokens the pipeline relies on, without growing the vocab."""
    if tok.eos_token is None and tok.sep_token is not None:
        tok.eos_token = tok.sep_token
    if tok.bos_token is None and tok.cls_token is not None:
        tok.bos_token = tok.cls_token
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError(f"tokenizer {tok.name_or_path!r} has neither a pad nor an EOS token")
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    tok.model_input_names = ["input_ids", "attention_mask"]
    return tok


def start_ids(tok: PreTrainedTokenizerBase) -> list[int]:
    """The ids every sequence starts with: ``[BOS]``, or the EOS for a tokenizer without BOS (see the module doc).

    ``[]`` only for a tokenizer with neither (then a text is its own start).
    """
    if tok.bos_token_id is not None:
        return [tok.bos_token_id]
    return [tok.eos_token_id] if tok.eos_token_id is not None else []


def encode(tok: PreTrainedTokenizerBase, text: str, *, eos: bool = True, max_length: int | None = None) -> list[int]:
    """Ids of ``[BOS] + text (+ [EOS])``, truncated to ``max_length`` tokens keeping BOS and EOS."""
    ids = tok(text, add_special_tokens=False)["input_ids"]
    head = start_ids(tok)
    tail = [tok.eos_token_id] if eos else []
    if max_length is not None:
        room = max_length - len(head) - len(tail)
        if room < 1:
            raise ValueError(f"max_length={max_length} leaves no room for text")
        ids = ids[:room]
    return head + ids + tail


def encode_batch(tok: PreTrainedTokenizerBase, texts: Sequence[str], *, eos: bool = True,
                 max_length: int | None = None) -> list[list[int]]:
    """:func:`encode` for many texts (one fast-tokenizer call)."""
    out = tok(list(texts), add_special_tokens=False)["input_ids"]
    head = start_ids(tok)
    tail = [tok.eos_token_id] if eos else []
    room = None if max_length is None else max_length - len(head) - len(tail)
    return [head + (ids if room is None else ids[:room]) + tail for ids in out]


def decode(tok: PreTrainedTokenizerBase, ids: Sequence[int]) -> str:
    """Text of ``ids`` without special tokens.

    WordPiece vocabularies (ours, GPT-2 Chinese) are joined without the spaces BERT decoding
    puts between CJK characters; ``##x`` continues the previous token; a space separates two
    ASCII words. Other tokenizers use their own ``decode``.
    """
    if not isinstance(tok, BertTokenizerFast):
        return tok.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)
    special = set(tok.all_special_ids) - {tok.unk_token_id}
    out: list[str] = []
    for token in tok.convert_ids_to_tokens([i for i in ids if i not in special]):
        if token == tok.unk_token:  # an unknown character stays visible as U+FFFD
            out.append("\ufffd")
            continue
        if token.startswith("##"):
            out.append(token[2:])
            continue
        if out and out[-1][-1:].isascii() and out[-1][-1:].isalnum() and token[:1].isascii() and token[:1].isalnum():
            out.append(" ")
        out.append(token)
    return "".join(out)


def pad_left(seqs: Sequence[Sequence[int]], pad_id: int):
    """Left-pad id lists into ``(input_ids, attention_mask)`` long tensors of shape (batch, max_len)."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids, mask


def pad_right(seqs: Sequence[Sequence[int]], pad_id: int):
    """Right-pad id lists into ``(input_ids, attention_mask)`` long tensors of shape (batch, max_len)."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[i, : len(s)] = 1
    return ids, mask
