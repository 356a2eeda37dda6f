"""The character n-gram LM (worked by hand) and the fluency yardstick built on it."""
import math
import random

import pytest

from rlhf.evaluation.char_ngram import CharNgramLM
from rlhf.evaluation.yardstick import YardstickConfig, fluency_yardstick, matched_real, split_reviews


def test_kneser_ney_bigram_by_hand():
    # Corpus "ab", order 2, D = 0.5; V = {a, b} + the unseen slot = 3, so P_0 = 1/3.
    # Continuation counts of order 1: a after BOS, b after a -> N1+(.a) = N1+(.b) = 1, total 2, 2 types.
    #   P_1(a) = (1 - .5)/2 + .5 * 2/2 * 1/3 = 5/12 = P_1(b);  P_1(unseen) = .5 * 2/2 * 1/3 = 1/6
    # Order 2 (raw counts): after 'a' only 'b' (once); after BOS only 'a'.
    #   P_2(b | a) = (1 - .5)/1 + .5 * 1/1 * 5/12 = 17/24;  P_2(a | a) = .5 * 5/12 = 5/24
    #   P_2(b | b) backs off whole (context never seen): 5/12
    lm = CharNgramLM.fit(["ab"], order=2, discount=0.5)
    assert lm.prob("a", "") == pytest.approx(17 / 24)  # after BOS
    assert lm.prob("b", "a") == pytest.approx(17 / 24)
    assert lm.prob("a", "a") == pytest.approx(5 / 24)
    assert lm.prob("b", "xb") == pytest.approx(5 / 12)
    assert lm.prob("z", "a") == pytest.approx(0.5 * 1 / 6)
    assert lm.perplexity(["ab"]) == pytest.approx(24 / 17)
    assert lm.perplexity(["ab"], starts=[1]) == pytest.approx(24 / 17)  # 'a' is context only
    assert lm.text_logprobs("ab") == pytest.approx([math.log(17 / 24)] * 2)
    assert math.isnan(lm.perplexity(["a"], starts=[1]))  # nothing scored


def test_discounts_are_estimated_per_order():
    lm = CharNgramLM.fit(["ab", "ab", "ac"], order=2)
    # Order 2 raw counts: BOS a 3, ab 2, ac 1 -> n1 = 1, n2 = 1 -> D = 1/3.
    assert lm.discounts[2] == pytest.approx(1 / 3)
    # Order 1 continuation counts a, b, c all 1 -> n1 / (n1 + 0) = 1, clipped to 0.95.
    assert lm.discounts[1] == pytest.approx(0.95)


def test_every_context_sums_to_one():
    lm = CharNgramLM.fit(["这部电影很好看", "这部手机很好用", "服务很差，不推荐", "很好很好"], order=4)
    for context in ("", "这部", "很好", "没见过的上下文", "差，"):
        total = sum(lm.prob(c, context) for c in lm.vocab) + lm.prob("\uffff", context)
        assert total == pytest.approx(1.0), context


def test_fit_refuses_bad_settings():
    with pytest.raises(ValueError, match="order"):
        CharNgramLM.fit(["ab"], order=0)
    with pytest.raises(ValueError, match="discount"):
        CharNgramLM.fit(["ab"], order=2, discount=1.5)
    with pytest.raises(ValueError, match="no text"):
        CharNgramLM.fit([], order=2)


def _reviews(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    subjects = ["这部电影", "这本书", "这家酒店", "这款手机", "这次购物", "快递", "客服", "房间"]
    verdicts = ["很好看，推荐大家去看", "非常好，下次还会再来", "质量不错，物流也快", "很失望，不会再买了",
                "服务态度很好，很满意", "太差了，不推荐购买", "性价比很高，值得购买", "一般般，没有想象的好"]
    return [f"{rng.choice(subjects)}{rng.choice(verdicts)}，{rng.choice(verdicts)}。" for _ in range(n)]


def test_split_leaves_out_the_prompts_reviews_and_holds_out_a_share():
    reviews = list(dict.fromkeys(_reviews(200)))[:50] + ["这部电影很特别的一条"]
    fit, held = split_reviews(reviews, ["这部电影很特别"], YardstickConfig(heldout_fraction=0.2), seed=0)
    assert "这部电影很特别的一条" not in fit + held  # the review the prompt was cut from
    assert (len(fit), len(held)) == (40, 10) and not set(fit) & set(held)
    assert (fit, held) == split_reviews(reviews, ["这部电影很特别"], YardstickConfig(heldout_fraction=0.2), seed=0)


def test_matched_real_spans_cover_the_sample_lengths():
    held = ["一二三", "一二三四五六七八", "一二三四五"]
    texts, starts, stops = matched_real(held, [(2, 3), (4, 4), (9, 9)])
    assert len(texts[0]) >= 5 and (starts[0], stops[0]) == (2, 5)  # a review of 5+ characters, chars 2..4
    assert texts[1] == "一二三四五六七八" and (starts[1], stops[1]) == (4, 8)
    assert texts[2] == "一二三四五六七八" and (starts[2], stops[2]) == (8, 8)  # none long enough: the longest


def test_yardstick_tells_reviews_from_babble():
    reviews = _reviews(400)
    rng = random.Random(1)
    chars = sorted(set("".join(reviews)))
    prompts = ["这部电影", "这本书", "快递"]
    real_like = [(p, "很好看，推荐大家去看") for p in prompts] * 10
    babble = [(p, "".join(rng.choice(chars) for _ in range(10))) for p in prompts] * 10
    out = fluency_yardstick(reviews, {"base": real_like, "tuned": babble}, YardstickConfig(order=3), seed=0)
    assert out["order"] == 3 and out["n_fit_texts"] + out["n_heldout_texts"] <= 400
    assert out["base"]["n_chars"] == out["tuned"]["n_chars"] == 30 * 10
    assert out["base"]["ratio"] < 1.5 < out["tuned"]["ratio"]
    assert out["tuned"]["perplexity"] > 5 * out["base"]["perplexity"]
    empty = fluency_yardstick(reviews, {"tuned": [("快递", "")]}, YardstickConfig(order=3))
    assert empty["tuned"] == {"perplexity": None, "real_perplexity": None, "ratio": None, "n_chars": 0}


def test_samples_report_shows_the_yardstick():
    from rlhf.evaluation.report import metrics_table

    figures = {"judge_score": 0.5}
    result = {"base": figures, "tuned": figures, "kl": 1.0, "win_rate": 0.5,
              "yardstick": {"order": 4, "base": {"perplexity": 120.0, "real_perplexity": 80.0, "ratio": 1.5},
                            "tuned": {"perplexity": 240.0, "real_perplexity": 80.0, "ratio": 3.0}}}
    table = metrics_table(result)
    assert "| perplexity per char, char 4-gram LM of real reviews | 120.000 | 240.000 |" in table
    assert "| ratio samples / real reviews | 1.500 | 3.000 |" in table
    assert "real reviews" not in metrics_table({k: v for k, v in result.items() if k != "yardstick"})
