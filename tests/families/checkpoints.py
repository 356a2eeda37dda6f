"""Tiny random checkpoints of real model families, written with ``save_pretrained`` (nothing downloaded).

Each mimics the files and settings of the real family as far as the pipeline can tell:

* :func:`gpt2_chinese` — the layout of ``uer/gpt2-chinese-cluecorpussmall``: a ``GPT2LMHeadModel``
  whose ``config.json`` says ``tokenizer_class: BertTokenizer`` and keeps GPT-2's default
  ``bos/eos_token_id`` 50256 (outside its vocabulary), with a BERT ``vocab.txt`` (``[PAD]``,
  ``[unusedN]``, ``[UNK] [CLS] [SEP] [MASK]``, characters, ``##`` pieces) and no ``tokenizer.json``
  — the tokenizer is rebuilt from ``vocab.txt`` when loaded (DESIGN.md §9's trap);
* :func:`bpe_causal_lm` — a Llama or Qwen2 architecture with a byte-level BPE tokenizer trained with
  ``tokenizers`` on the given texts: no BOS, its own EOS ``<|endoftext|>``, a pad token or none;
* :func:`bert_encoder` — a ``BertModel`` (no head: the score head is new when the pipeline loads it
  as ``BertForSequenceClassification``) with its own char vocabulary, like ``bert-base-chinese``.
"""
from __future__ import annotations

import collections
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

BERT_SPECIALS = ["[PAD]", "[unused1]", "[unused2]", "[unused3]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def char_vocab(texts: Iterable[str], size: int) -> list[str]:
    """A BERT-style vocabulary: specials, the ``size`` most frequent non-space characters, ``##`` ASCII pieces."""
    counts = collections.Counter(c for t in texts for c in t if not c.isspace())
    chars = [c for c, _ in counts.most_common(size)]
    return BERT_SPECIALS + chars + ["##" + c for c in chars if c.isascii() and c.isalnum()]


def write_bert_vocab(path: Path, vocab: Sequence[str], *, lowercase: bool, special_tokens_map: bool) -> None:
    """A ``vocab.txt`` and the small ``tokenizer_config.json`` BERT-vocabulary checkpoints on the hub have.

    No ``tokenizer.json`` and no ``tokenizer_class``: ``AutoTokenizer`` picks the class from
    ``config.json`` (its ``tokenizer_class`` or ``model_type``) and builds the vocabulary from ``vocab.txt``.
    """
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lowercase, "model_max_length": 512}),
                                                encoding="utf-8")
    if special_tokens_map:
        (path / "special_tokens_map.json").write_text(json.dumps({
            "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
            "mask_token": "[MASK]"}), encoding="utf-8")


def gpt2_chinese(path: Path, texts: Iterable[str], *, chars: int = 800, n_positions: int = 128, seed: int = 0) -> Path:
    """A tiny GPT-2 with a BERT char tokenizer in the layout of ``uer/gpt2-chinese-cluecorpussmall``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    vocab = char_vocab(texts, chars)
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(vocab), n_positions=n_positions, n_embd=32, n_layer=2, n_head=2,
                        tokenizer_class="BertTokenizer")  # bos/eos_token_id stay GPT-2's 50256, as uer's
    GPT2LMHeadModel(config).save_pretrained(path)
    write_bert_vocab(path, vocab, lowercase=False, special_tokens_map=True)
    return path


def train_bpe(texts: Iterable[str], *, vocab_size: int = 600, specials: Sequence[str] = ("<|endoftext|>",)):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``texts`` (GPT-2 / Qwen2 style, no prefix space)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(list(texts), trainer=trainer)
    return tk


def bpe_causal_lm(path: Path, texts: Iterable[str], *, arch: str = "qwen2", pad: str | None = None,
                  vocab_size: int = 600, max_positions: int = 128, seed: int = 0) -> Path:
    """A tiny Llama or Qwen2 causal LM (2 layers, hidden 32) with a byte-level BPE tokenizer.

    No BOS token; EOS ``<|endoftext|>``; ``pad``: None (no pad token), or a token name: the EOS
    itself (as Qwen2's tokenizers do) or a token of its own (e.g. ``<|pad|>``, added as special).
    """
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    eos = "<|endoftext|>"
    specials = [eos] + ([pad] if pad not in (None, eos) else [])
    tk = train_bpe(texts, vocab_size=vocab_size, specials=specials)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token=eos, pad_token=pad, bos_token=None,
                                  model_max_length=max_positions, padding_side="left", clean_up_tokenization_spaces=False)
    sizes = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=max_positions, eos_token_id=tok.eos_token_id,
                 bos_token_id=None, pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(seed)
    if arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**sizes))
    elif arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**sizes))
    else:
        raise ValueError(f"arch: {arch!r}; expected 'qwen2' or 'llama'")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def bert_encoder(path: Path, texts: Iterable[str], *, chars: int = 500, max_positions: int = 128, seed: int = 0) -> Path:
    """A tiny ``BertModel`` checkpoint (pooler included, no classification head) with its own char vocab."""
    from transformers import BertConfig, BertModel

    vocab = char_vocab(texts, chars)[::-1]  # another order than any policy's vocabulary
    vocab = BERT_SPECIALS + [v for v in vocab if v not in BERT_SPECIALS]
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=max_positions, pad_token_id=0)
    BertModel(config).save_pretrained(path)
    write_bert_vocab(path, vocab, lowercase=False, special_tokens_map=False)
    return path
