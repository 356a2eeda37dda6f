"""Tiny models for the PPO tests: a char tokenizer and 2-layer, 32-wide GPT-2s built from configs."""
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel  # noqa: E402

from rlhf.tokenizer import build_char_tokenizer  # noqa: E402

CORPUS = ["好的很好的不错呀", "哈哈嗯这是一个测试句子", "东西质量太差了", "这部电影很好看"]


@pytest.fixture(scope="session")
def tok():
    return build_char_tokenizer(CORPUS)


def tiny_config(tok, **kw):
    return GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=len(tok), n_positions=64,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      **kw)


@pytest.fixture
def make_lm(tok):
    def make(seed: int = 0) -> GPT2LMHeadModel:
        torch.manual_seed(seed)
        return GPT2LMHeadModel(tiny_config(tok)).eval()
    return make


@pytest.fixture
def make_rm(tok):
    def make(seed: int = 0) -> GPT2ForSequenceClassification:
        torch.manual_seed(seed)
        return GPT2ForSequenceClassification(tiny_config(tok, num_labels=1)).eval()
    return make
