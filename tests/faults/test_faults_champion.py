"""Issue 18, case 1: the champion was tuned from another base, with another vocabulary.

After ``make run`` (default profile, vocabulary ~4k) a quick trial with the tiny profile builds
a new base (another vocabulary); ``evaluate_samples`` then sampled the registered champion and
decoded its ids with the *new* base's tokenizer: ids past that vocabulary decode to ``None`` and
``rlhf/tokenizer.py`` crashed with ``AttributeError``. The champion's samples must be decoded with
its own tokenizer; KL and perplexity under the new base do not apply to it, so it is compared on
what does: the judge's mean over the same prompts and seeds.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from rlhf.config import from_dict
from rlhf.evaluation.config import EvalConfig
from rlhf.evaluation.promotion import decide_promotion
from rlhf.tokenizer import build_char_tokenizer, load_tokenizer
from tasks import evaluate_samples

PROMPTS = ["这部电影很", "刚收到货，感觉"]
SMALL_CORPUS = PROMPTS + ["很好", "很差"]
LARGE_CORPUS = SMALL_CORPUS + ["质量非常满意推荐购买太失望不会再买还行吧一般般物流快包装破了客服态度好性价比高"]


class CountingJudge:
    """Share of '好' in a text: deterministic, no model."""

    def score(self, texts):
        return [t.count("好") / max(len(t), 1) for t in texts]


def save_model(directory, tok, seed: int):
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=64, vocab_size=len(tok),
                                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                       pad_token_id=tok.pad_token_id))
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("champion")
    small, large = build_char_tokenizer(SMALL_CORPUS), build_char_tokenizer(LARGE_CORPUS)
    assert len(large) > len(small) + 20
    base_dir = save_model(root / "base", small, 0)      # this run's base: the small vocabulary
    same_dir = save_model(root / "same", small, 1)      # a champion tuned from the same base
    other_dir = save_model(root / "other", large, 2)    # a champion tuned from another base
    cfg = from_dict(EvalConfig, {"samples_per_prompt": 4, "max_new_tokens": 12, "batch_size": 8}, prefix="eval")
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    return SimpleNamespace(base=base, tok=load_tokenizer(base_dir), cfg=cfg, same=same_dir, other=other_dir)


def champion_result(setup, monkeypatch, directory):
    from rlhf_ops import registry

    monkeypatch.setattr(registry, "download", lambda version, dest=None: directory)
    champion = SimpleNamespace(name="policy", version="1", tags={})
    return evaluate_samples._champion_result(champion, "no-stored-key", setup.base, setup.tok, PROMPTS, setup.cfg,
                                             CountingJudge(), None, 0)


def test_a_champion_with_another_vocabulary_is_judged_with_its_own_tokenizer(setup, monkeypatch):
    result = champion_result(setup, monkeypatch, setup.other)  # crashed: AttributeError in rlhf/tokenizer.py
    assert math.isfinite(result["tuned"]["judge_score"])
    assert "different tokenizer" in result["comparison"]
    # decoded with its own vocabulary: characters this base's tokenizer does not have
    texts = "".join(row["tuned"] for row in result["rows"])
    assert set(texts) <= set("".join(LARGE_CORPUS)) | {"\ufffd"}  # U+FFFD: a sampled [UNK]
    assert set(texts) - set("".join(SMALL_CORPUS)) - {"\ufffd"}
    challenger = {"eval_key": result["eval_key"], "kl": 0.5, "tuned": {"judge_score": 2.0, "distinct_2": 0.9},
                  "base": {"distinct_2": 0.9}}
    decision = decide_promotion(challenger, result, max_kl=8.0)
    assert decision.promote and decision.champion_judge == result["tuned"]["judge_score"]


def test_a_champion_with_the_same_vocabulary_is_evaluated_as_before(setup, monkeypatch):
    result = champion_result(setup, monkeypatch, setup.same)
    assert "comparison" not in result
    assert math.isfinite(result["kl"]) and "perplexity" in result["tuned"]  # measured against this base
    assert math.isfinite(result["tuned"]["judge_score"])


def test_same_vocabulary():
    small, large = build_char_tokenizer(SMALL_CORPUS), build_char_tokenizer(LARGE_CORPUS)
    assert evaluate_samples.same_vocabulary(small, build_char_tokenizer(SMALL_CORPUS))
    assert not evaluate_samples.same_vocabulary(small, large)
    shuffled = build_char_tokenizer(list(reversed(SMALL_CORPUS)))  # same characters, other ids
    assert len(shuffled) == len(small) and not evaluate_samples.same_vocabulary(small, shuffled)
