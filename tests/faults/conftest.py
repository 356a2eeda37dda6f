"""Fixtures of the fault tests: tiny save_pretrained models (a causal LM and a reward model)."""
from __future__ import annotations

from pathlib import Path

import pytest

TEXTS = ["这部电影很好看，推荐", "刚收到货，感觉很差", "说实话，真的很一般"]


def save_tiny_models(root: Path, texts=TEXTS, n_positions: int = 32) -> dict[str, Path]:
    """``{"policy": causal LM dir, "reward_model": sequence-classifier dir}``, each with its char tokenizer."""
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    from rlhf.tokenizer import build_char_tokenizer

    tok = build_char_tokenizer(texts, vocab_size=64)
    config = dict(vocab_size=len(tok), n_positions=n_positions, n_embd=16, n_layer=1, n_head=2,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    dirs = {"policy": root / "policy", "reward_model": root / "reward_model"}
    GPT2LMHeadModel(GPT2Config(**config)).save_pretrained(dirs["policy"])
    GPT2ForSequenceClassification(GPT2Config(num_labels=1, **config)).save_pretrained(dirs["reward_model"])
    for directory in dirs.values():
        tok.save_pretrained(directory)
    return dirs


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    import torch

    torch.manual_seed(0)
    return save_tiny_models(tmp_path_factory.mktemp("tiny-models"))


def forbid_flow(monkeypatch, why: str) -> None:
    """Replace ``flows.pipeline`` by a stub whose flow fails the test with ``why`` if it runs: the checks
    under test must stop ``rlhf run`` before it (and Prefect's start-up costs seconds)."""
    import sys
    import types

    stub = types.ModuleType("flows.pipeline")

    def pipeline(*args, **kwargs):
        raise AssertionError(why)
    stub.pipeline = pipeline
    monkeypatch.setitem(sys.modules, "flows.pipeline", stub)
