"""Sampling, KL, NLL and the whole base-vs-tuned evaluation on tiny random GPT-2s."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from rlhf.config import from_dict
from rlhf.evaluation.config import EvalConfig
from rlhf.evaluation.promotion import decide_promotion
from rlhf.evaluation.samples import (evaluate_policy, response_logprobs, response_nll, sample, select_eval_prompts,
                                     sequence_kl)
from rlhf.judge.base import Judge
from rlhf.judge.config import JudgeConfig
from rlhf.judge.loader import load_judge
from rlhf.tokenizer import build_char_tokenizer

PUBLISHED = ["刚收到货，感觉", "这部电影很", "说实话，真的很", "这次购物总的来说体验很"]
CORPUS = PUBLISHED + ["质量很好，非常满意，推荐购买", "太差了，很失望，不会再买", "还行吧，一般般"]


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer(CORPUS)


def tiny_gpt2(tok, seed: int, **kw) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=len(tok),
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **kw)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def base(tok):
    return tiny_gpt2(tok, 0)


@pytest.fixture(scope="module")
def policy(base):
    torch.manual_seed(1)
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.05 * torch.randn_like(p))  # a nearby model: small but nonzero KL
    return tuned


def degenerate_gpt2(tok, char: str = "好") -> GPT2LMHeadModel:
    """A GPT-2 whose next token is always ``char``: final layer norm outputs a constant, lm_head maps it there."""
    model = tiny_gpt2(tok, 2, tie_word_embeddings=False)
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.fill_(1.0)
        model.lm_head.weight.zero_()
        model.lm_head.weight[tok.convert_tokens_to_ids(char)] = 10.0  # logit 320 vs 0 for every other token
    return model


CFG = EvalConfig(samples_per_prompt=4, batch_size=5, max_new_tokens=8)


def test_sample_shapes_masks_and_decoding(tok, base):
    batch = sample(base, tok, PUBLISHED, 6, CFG, seed=0)
    n, T = 24, CFG.max_new_tokens
    assert len(batch) == n and batch.prompts[:6] == [PUBLISHED[0]] * 6 and batch.prompts[-1] == PUBLISHED[-1]
    assert batch.response_ids.shape == batch.response_mask.shape == (n, T)
    first = batch.query_mask.argmax(-1)  # left padding: the first real token is BOS
    assert (batch.query_ids[torch.arange(n), first] == tok.bos_token_id).all()
    assert (batch.query_mask.sum(-1) == torch.tensor([len(p) + 1 for p in batch.prompts])).all()
    assert batch.eos.any() and not batch.eos.all()  # a random model ends some samples, not all
    for ids, mask, ended, text in zip(batch.response_ids, batch.response_mask, batch.eos, batch.completions):
        length = int(mask.sum())
        assert mask[:length].all() and not mask[length:].any()  # 1s, then 0s
        assert (ids[:length - 1] != tok.eos_token_id).all()
        assert bool(ended) == (ids[length - 1] == tok.eos_token_id) and (length == T or ended)
        assert (ids[length:] == tok.pad_token_id).all()
        assert len(text) <= length - int(ended)
    assert batch.texts[0] == batch.prompts[0] + batch.completions[0]


def test_sample_is_seeded(tok, base):
    a = sample(base, tok, PUBLISHED[:2], 3, CFG, seed=7)
    b = sample(copy.deepcopy(base), tok, PUBLISHED[:2], 3, CFG, seed=7)  # reseeded: same stream, same model
    c = sample(base, tok, PUBLISHED[:2], 3, CFG, seed=8)
    assert torch.equal(a.response_ids, b.response_ids) and a.completions == b.completions
    assert not torch.equal(a.response_ids, c.response_ids)


def test_evaluation_samples_with_the_sampler_ppo_trains_with(tok, base):
    """The one sampler: the same seed and batches give evaluation the completions `sample_completions` gives."""
    from rlhf.sampling import sample_completions

    batch = sample(base, tok, PUBLISHED[:2], 3, CFG, seed=7)
    shared = sample_completions(base, tok, PUBLISHED[:2], n=3, max_new_tokens=CFG.max_new_tokens, seed=7,
                                batch_size=CFG.batch_size)
    assert batch.completions == [c for row in shared for c in row]


def test_response_logprobs_match_unpadded_single_forwards(tok, base):
    batch = sample(base, tok, PUBLISHED, 1, CFG, seed=0)  # prompts of 5..11 chars: left padding differs
    lp = response_logprobs(base, batch, temperature=0.7, batch_size=3)
    for i in range(len(batch)):
        q = batch.query_ids[i][batch.query_mask[i].bool()]
        r = batch.response_ids[i][batch.response_mask[i].bool()]
        with torch.no_grad():
            logits = base(torch.cat([q, r])[None]).logits[0, len(q) - 1:-1] / 0.7
        expected = F.log_softmax(logits, -1).gather(-1, r[:, None]).squeeze(-1)
        torch.testing.assert_close(lp[i, :len(r)], expected, atol=1e-5, rtol=1e-5)
        assert (lp[i, len(r):] == 0).all()


def test_sequence_kl_and_response_nll_by_hand(tok, base, policy):
    batch = sample(policy, tok, PUBLISHED[:2], 2, CFG, seed=3)
    assert torch.equal(sequence_kl(base, base, batch), torch.zeros(len(batch)))
    kl = sequence_kl(policy, base, batch)
    pol_lp, ref_lp = response_logprobs(policy, batch), response_logprobs(base, batch)
    torch.testing.assert_close(kl, (pol_lp - ref_lp).sum(-1))
    assert kl.shape == (4,) and kl.abs().sum() > 0
    nll, count = response_nll(base, batch)
    torch.testing.assert_close(nll, -ref_lp.sum(-1))
    assert count.tolist() == batch.response_mask.sum(-1).float().tolist()  # the EOS counts: it is a token chosen


def test_select_eval_prompts():
    records = [{"prompt": p, "source": "published", "split": "train"} for p in PUBLISHED]
    records += [{"prompt": f"held{i}", "source": "heldout", "split": "test" if i % 2 else "train"} for i in range(10)]
    records += [{"prompt": PUBLISHED[0], "source": "published", "split": "test"}]
    chosen = select_eval_prompts(records, n_heldout=3)
    assert [c["prompt"] for c in chosen] == PUBLISHED + ["held1", "held3", "held5"]
    assert [c["group"] for c in chosen] == ["published"] * 4 + ["heldout"] * 3


class LengthScorer:
    """A stand-in reward model: the length of what it reads, so the test can check it read prompt + completion."""

    def score_texts(self, texts):
        return torch.tensor([float(len(t)) for t in texts])


class CountJudge(Judge):
    def _score_nonempty(self, texts):
        return [min(1.0, t.count("好") / 4) for t in texts]


def test_evaluate_policy_structure(tok, base, policy):
    prompts = [{"prompt": p, "source": "published"} for p in PUBLISHED[:2]] + [{"prompt": "还行", "source": "heldout"}]
    res = evaluate_policy(base, policy, tok, prompts, CFG, CountJudge(), reward_scorer=LengthScorer(), seed=5)
    assert res["n_samples"] == len(res["rows"]) == 12 and res["n_prompts"] == 3
    assert set(res["groups"]) == {"published", "heldout"} and res["groups"]["heldout"]["n_samples"] == 4
    for model in ("base", "tuned"):
        assert set(res[model]) == {"judge_score", "judge_positive_rate", "rm_score", "distinct_1", "distinct_2",
                                   "repetition_rate", "mean_length", "eos_rate", "perplexity"}
    rows = res["rows"]
    assert all(r["tuned_rm"] == len(r["prompt"]) + len(r["tuned"]) for r in rows)
    assert res["tuned"]["rm_score"] == pytest.approx(sum(r["tuned_rm"] for r in rows) / 12)
    assert res["kl"] == pytest.approx(sum(r["kl"] for r in rows) / 12, abs=1e-6)
    pub = [r for r in rows if r["group"] == "published"]
    assert res["groups"]["published"]["base"]["judge_score"] == pytest.approx(sum(r["base_judge"] for r in pub) / 8)
    # the same model on the same seeds: identical samples, zero KL, every pair a tie
    same = evaluate_policy(base, copy.deepcopy(base), tok, PUBLISHED[:2], CFG, CountJudge(), seed=5)
    assert all(r["base"] == r["tuned"] for r in same["rows"])
    assert same["kl"] == 0.0 and same["win_rate"] == 0.5 and same["base"] == same["tuned"]
    assert same["eval_key"] == evaluate_policy(base, policy, tok, PUBLISHED[:2], CFG, CountJudge(), seed=5)["eval_key"]


def test_base_cache_gives_the_same_result_and_samples_the_base_once(tok, base, policy):
    calls = []

    class Counting(CountJudge):
        def _score_nonempty(self, texts):
            calls.append(len(texts))
            return super()._score_nonempty(texts)

    plain = evaluate_policy(base, policy, tok, PUBLISHED[:2], CFG, Counting(), reward_scorer=LengthScorer(), seed=5)
    calls.clear()
    cache: dict = {}
    first = evaluate_policy(base, policy, tok, PUBLISHED[:2], CFG, Counting(), reward_scorer=LengthScorer(), seed=5,
                            base_cache=cache)
    second = evaluate_policy(base, copy.deepcopy(policy), tok, PUBLISHED[:2], CFG, Counting(),
                             reward_scorer=LengthScorer(), seed=5, base_cache=cache)
    assert first == plain and second == plain
    assert len(calls) == 3  # base once, each policy once
    other_seed = evaluate_policy(base, policy, tok, PUBLISHED[:2], CFG, Counting(), seed=6, base_cache=cache)
    assert len(cache) == 2 and other_seed["eval_key"] != plain["eval_key"]


def test_degenerate_policy_scores_low_on_diversity_and_is_not_promoted(tok, base, policy, tmp_path):
    degenerate = degenerate_gpt2(tok)
    degenerate.save_pretrained(tmp_path)  # loadable as a plain causal LM, as the stage will load it
    degenerate = AutoModelForCausalLM.from_pretrained(tmp_path)
    cfg = from_dict(EvalConfig, {"samples_per_prompt": 4, "batch_size": 8}, prefix="eval")
    judge = load_judge(JudgeConfig())
    res = evaluate_policy(base, degenerate, tok, PUBLISHED, cfg, judge, seed=0)
    assert all(r["tuned"] == "好" * cfg.max_new_tokens for r in res["rows"])
    assert res["tuned"]["distinct_1"] == pytest.approx(1 / 256)  # one char among 16 per sample x 16 samples
    assert res["tuned"]["distinct_2"] == pytest.approx(1 / 240)  # one bigram among 15 x 16
    assert res["tuned"]["repetition_rate"] == 1.0 and res["tuned"]["eos_rate"] == 0.0
    assert res["base"]["distinct_2"] > 0.5
    assert res["kl"] > cfg.max_kl
    # the hack works on the judge ("好" = good) ...
    champion = evaluate_policy(base, copy.deepcopy(base), tok, PUBLISHED, cfg, judge, seed=0)
    assert res["tuned"]["judge_score"] > champion["tuned"]["judge_score"]
    # ... but the gate refuses it, with or without a champion, and on diversity alone as well
    for champ in (None, champion):
        decision = decide_promotion(res, champ, cfg.max_kl, cfg.min_distinct_2_ratio)
        assert not decision.promote
        assert "max_kl" in decision.reason and "distinct-2" in decision.reason
    assert not decide_promotion(res, None, max_kl=1e9, min_distinct_2_ratio=cfg.min_distinct_2_ratio).promote
    healthy = evaluate_policy(base, policy, tok, PUBLISHED, cfg, judge, seed=0)  # a nearby, diverse policy passes
    assert decide_promotion(healthy, None, cfg.max_kl, cfg.min_distinct_2_ratio).promote
