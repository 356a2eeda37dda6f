"""Base LM: pretraining learns, perplexity is what it says, loading errors are clear."""
from __future__ import annotations

import math
import random

import pytest
import torch

from rlhf.config import from_dict
from rlhf.models.base_lm import bootstrap_base, length_bucketed_batches, load_causal_lm, perplexity
from rlhf.models.config import BaseConfig
from rlhf.sampling import sample_completions

TINY = {"n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 32, "max_length": 16, "batch_size": 8,
        "warmup_steps": 2, "learning_rate": 5e-3}
TEXTS = ["这个很好"] * 20 + ["那个很差"] * 20


def test_bucketed_batches_cover_each_index_once_and_group_lengths():
    lengths = [random.Random(i).randint(1, 50) for i in range(100)]
    batches = length_bucketed_batches(lengths, 10, random.Random(0), bucket_batches=10)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(100))
    assert all(lengths[b[i]] <= lengths[b[i + 1]] for b in batches for i in range(len(b) - 1))


def test_pretraining_lowers_perplexity_and_is_seeded():
    cfg = from_dict(BaseConfig, {**TINY, "steps": 1})
    model0, tok, _ = bootstrap_base(cfg, TEXTS, seed=0, progress=False)
    before = perplexity(model0, tok, TEXTS, max_length=16)
    cfg = from_dict(BaseConfig, {**TINY, "steps": 60})
    model, tok, summary = bootstrap_base(cfg, TEXTS, seed=0, progress=False)
    after = perplexity(model, tok, TEXTS, max_length=16)
    assert after < before / 3
    # 6 tokens per text ([BOS] 4 chars [EOS]) -> at best ~ 2 ways after "这/那": perplexity close to 1.
    assert after < 2.0
    model_b, _, _ = bootstrap_base(cfg, TEXTS, seed=0, progress=False)
    for a, b in zip(model.parameters(), model_b.parameters()):
        assert torch.equal(a, b)
    assert summary["vocab_size"] == len(tok)


def test_perplexity_of_a_uniform_model_is_the_vocab_size():
    cfg = from_dict(BaseConfig, {**TINY, "steps": 1})
    model, tok, _ = bootstrap_base(cfg, TEXTS, seed=0, progress=False)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    assert math.isclose(perplexity(model, tok, TEXTS, max_length=16), len(tok), rel_tol=1e-4)


def test_samples_continue_the_prompt(tmp_path):
    """The base stage's printed samples come from the one sampler, seeded."""
    cfg = from_dict(BaseConfig, {**TINY, "steps": 60})
    model, tok, _ = bootstrap_base(cfg, TEXTS, seed=0, progress=False)
    out = sample_completions(model, tok, ["这个"], n=3, max_new_tokens=4, seed=1)[0]
    assert len(out) == 3 and out == sample_completions(model, tok, ["这个"], n=3, max_new_tokens=4, seed=1)[0]
    assert all(c.startswith("很") for c in out)  # the corpus: "这个" is always followed by "很"


def test_load_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_causal_lm(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE"):
        load_causal_lm("no-such-org/no-such-model")


def test_load_saved_model_round_trip(tmp_path):
    cfg = from_dict(BaseConfig, {**TINY, "steps": 2})
    model, tok, _ = bootstrap_base(cfg, TEXTS, seed=0, progress=False)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, tok2 = load_causal_lm(str(tmp_path))
    assert math.isclose(perplexity(loaded, tok2, TEXTS, max_length=16), perplexity(model, tok, TEXTS, max_length=16),
                        rel_tol=1e-5)
