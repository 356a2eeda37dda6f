"""The promotion gate on hand-made evaluation results."""
import math

import pytest

from rlhf.evaluation.promotion import decide_promotion


def result(judge=0.7, kl=2.0, d2=0.6, base_d2=0.8, key="k1"):
    return {"base": {"judge_score": 0.5, "distinct_2": base_d2},
            "tuned": {"judge_score": judge, "distinct_2": d2}, "kl": kl, "eval_key": key}


def test_first_challenger_within_bounds_is_promoted():
    d = decide_promotion(result(), None, max_kl=6.0)
    assert d.promote and d.champion_judge is None and "no champion" in d.reason
    assert d.distinct_2_floor == pytest.approx(0.4)  # 0.5 x base 0.8


def test_judge_must_beat_champion_strictly():
    assert decide_promotion(result(judge=0.71), result(judge=0.70), 6.0).promote
    worse = decide_promotion(result(judge=0.69), result(judge=0.70), 6.0)
    assert not worse.promote and "does not beat" in worse.reason and worse.champion_judge == 0.70
    assert not decide_promotion(result(judge=0.70), result(judge=0.70), 6.0).promote


def test_kl_bound_holds_even_without_champion():
    assert decide_promotion(result(kl=6.0), None, 6.0).promote          # the bound is inclusive
    over = decide_promotion(result(judge=0.99, kl=6.01), result(judge=0.1), 6.0)
    assert not over.promote and "exceeds max_kl 6" in over.reason
    assert not decide_promotion(result(kl=math.nan), None, 6.0).promote


def test_distinct_2_floor_relative_to_base():
    assert decide_promotion(result(d2=0.40, base_d2=0.8), None, 6.0).promote
    low = decide_promotion(result(d2=0.39, base_d2=0.8), None, 6.0)
    assert not low.promote and "distinct-2 0.390 is below the floor 0.400" in low.reason
    assert decide_promotion(result(d2=0.39, base_d2=0.8), None, 6.0, min_distinct_2_ratio=0.25).promote


def test_every_failed_rule_is_named():
    d = decide_promotion(result(judge=0.1, kl=50.0, d2=0.01), result(judge=0.5), 6.0)
    assert not d.promote
    assert all(s in d.reason for s in ("max_kl", "distinct-2", "does not beat"))


def test_different_prompts_or_seeds_are_not_compared():
    d = decide_promotion(result(judge=0.9, key="a"), result(judge=0.1, key="b"), 6.0)
    assert not d.promote and "re-evaluate" in d.reason


def test_flat_metric_keys_are_read_too():
    flat = {"tuned/judge_score": 0.8, "tuned/distinct_2": 0.5, "base/distinct_2": 0.6, "kl": 1.0}
    assert decide_promotion(flat, {"tuned/judge_score": 0.7}, 6.0).promote
    assert not decide_promotion(flat, {"tuned.judge_score": 0.9}, 6.0).promote  # rlhf.config.flatten's dots
    assert not decide_promotion({"kl": 1.0}, None, 6.0).promote  # missing figures fail
