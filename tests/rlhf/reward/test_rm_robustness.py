"""The robustness set: each perturbation on fixed texts, perturbed lists, and the report of two scorers."""
import random

import pytest
import torch

from rlhf.reward.robustness import (PERTURBATIONS, RobustnessConfig, drop_chars, first_chars, nfkc, perturb_lists,
                                    remove_punctuation, report_columns, report_rows, robustness_report)

TEXT = "质量很好，物流也快！推荐购买。Ｈｉ～"


def test_remove_punctuation_keeps_everything_else():
    assert remove_punctuation(TEXT) == "质量很好物流也快推荐购买Ｈｉ～"  # ～ is a symbol (Sm), not punctuation
    assert remove_punctuation("好!!! (真的) 不错...") == "好 真的 不错"
    assert remove_punctuation("“好”、《书》") == "好书"


def test_nfkc_folds_full_width_forms():
    assert nfkc(TEXT) == "质量很好,物流也快!推荐购买。Hi~"  # 。 has no compatibility form
    assert nfkc("ＡＢＣ１２３") == "ABC123"


def test_drop_chars_drops_a_tenth_at_seeded_positions():
    text = "一二三四五六七八九十" * 2  # 20 characters: 2 dropped
    a = drop_chars(text, 0.1, random.Random(0))
    assert len(a) == 18 and a == drop_chars(text, 0.1, random.Random(0))
    assert drop_chars(text, 0.1, random.Random(1)) != a
    # What is left keeps its order: a subsequence of the original.
    it = iter(text)
    assert all(c in it for c in a)
    assert len(drop_chars("好评", 0.1, random.Random(0))) == 1  # at least one dropped, never all
    assert drop_chars("好", 0.1, random.Random(0)) == "好"


def test_first_chars_cuts():
    assert first_chars("一二三四五", 3) == "一二三" and first_chars("一二", 30) == "一二"


def test_perturbed_lists_keep_ids_prompts_and_tiers():
    lists = [{"id": "a", "prompt": "", "tiers": [["很好，推荐！", "不错。"], ["太差了，退货！"]]},
             {"id": "b", "prompt": "这本书", "tiers": [["很好看"], ["很难看"]]}]
    out = perturb_lists(lists, ["这部电影很", "说实话，真的很"], RobustnessConfig(first_chars=3))
    assert list(out) == list(PERTURBATIONS)
    assert out["no_punctuation"][0]["tiers"] == [["很好推荐", "不错"], ["太差了退货"]]
    assert out["nfkc"][0]["tiers"] == [["很好,推荐!", "不错。"], ["太差了,退货!"]]
    assert out["first_chars"][0]["tiers"] == [["很好，", "不错。"], ["太差了"]]
    # One published prompt a list, the same for all its texts; prompts cycle over the lists.
    assert out["prompt_prefix"][0]["tiers"] == [["这部电影很很好，推荐！", "这部电影很不错。"], ["这部电影很太差了，退货！"]]
    assert out["prompt_prefix"][1]["tiers"] == [["说实话，真的很很好看"], ["说实话，真的很很难看"]]
    for copies in out.values():
        assert [(c["id"], c["prompt"], [len(t) for t in c["tiers"]]) for c in copies] == \
            [("a", "", [2, 1]), ("b", "这本书", [1, 1])]
    assert out == perturb_lists(lists, ["这部电影很", "说实话，真的很"], RobustnessConfig(first_chars=3))  # seeded
    assert "prompt_prefix" not in perturb_lists(lists, [])


class CountScorer:
    """score = count('好') - count('差') (plus 0.5 per '！', so removing punctuation can change a ranking)."""

    def score_texts(self, texts):
        return torch.tensor([t.count("好") - t.count("差") + 0.5 * t.count("！") for t in texts])


class LengthScorer:
    def score_texts(self, texts):
        return torch.tensor([float(len(t)) for t in texts])


def test_report_ranks_every_scorer_on_the_same_lists():
    lists = [{"id": "a", "prompt": "", "tiers": [["好"], ["差差差！！！"]]},
             {"id": "b", "prompt": "", "tiers": [["好好好好好好好好"], ["差"]]},
             {"id": "c", "prompt": "", "tiers": [["！！"], ["差"]]}]  # no text left without punctuation: skipped
    report = robustness_report({"model": CountScorer(), "baseline": LengthScorer()}, lists, ["这部电影很"])
    assert set(report) == set(PERTURBATIONS)
    clean = report["no_punctuation"]
    assert clean["n_lists"] == 2 and clean["n_lists_skipped"] == 1 and clean["n_pairs"] == 2
    assert clean["model"]["pairwise_accuracy"] == 1.0 and clean["baseline"]["pairwise_accuracy"] == 0.5
    # Original: '差差差！！！' scores -1.5 < 1, '！！' 1 > -1: the model is right on all 3; length on 1 of 3.
    original = {"n_lists": 3, "model": {"pairwise_accuracy": 1.0, "exact_order_accuracy": 1.0, "kendall_tau_b": 1.0},
                "baseline": {"pairwise_accuracy": 1 / 3, "exact_order_accuracy": 1 / 3, "kendall_tau_b": -1 / 3}}
    rows = report_rows(report, ("model", "baseline"), original=original)
    assert [r["perturbation"] for r in rows] == ["original", *PERTURBATIONS]
    assert set(rows[1]) == set(report_columns(("model", "baseline")))
    assert rows[1]["baseline_pairwise_accuracy"] == 0.5 and rows[0]["n_lists"] == 3
    assert report["prompt_prefix"]["model"]["pairwise_accuracy"] == pytest.approx(1.0)
