"""Evaluation metrics: pairwise, exact order, Kendall tau-b, tables, bad input."""
import math

import pytest
import torch

from rlhf.reward.evaluate import (InvalidRankListError, as_rank_list, by_list_length, evaluate_reward_model,
                                  kendall_tau_b, prepare_lists, ranking_metrics)
from rlhf.reward.loss import build_rank_pairs


class LexiconScorer:
    """Stands in for RewardScorer: score = count('好') - count('差'); ids are the characters."""

    max_length = 8

    def encode(self, texts):
        seqs = [[ord(c) for c in t] for t in texts]
        return [s[: self.max_length] for s in seqs], [len(s) > self.max_length for s in seqs]

    def score_encoded(self, seqs, batch_size=None):
        return torch.tensor([float(s.count(ord("好")) - s.count(ord("差"))) for s in seqs])


def test_kendall_tau_b_by_hand():
    tiers = torch.tensor([1.0, 1.0, 0.0, 0.0])  # two tied best above two tied worst
    # perfect: C - D = 4 of n0 = 6 pairs, n1 = 2 ties in truth, n2 = 0 -> 4 / sqrt(4 * 6)
    assert kendall_tau_b(tiers, torch.tensor([4.0, 3.0, 2.0, 1.0])) == pytest.approx(4 / math.sqrt(24))
    # half the cross pairs wrong -> 0
    assert kendall_tau_b(tiers, torch.tensor([4.0, 1.0, 2.0, 3.0])) == pytest.approx(0.0)
    # strict ranking, reversed -> -1; one swap of 3 -> (2 - 1) / 3
    assert kendall_tau_b(torch.tensor([3.0, 2.0, 1.0]), torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(-1.0)
    assert kendall_tau_b(torch.tensor([3.0, 2.0, 1.0]), torch.tensor([2.0, 3.0, 1.0])) == pytest.approx(1 / 3)
    # ties in the scores too: truth [1,1,0], scores [2,1,1] -> C=1 (a,c), D=0, n1=1, n2=1 -> 1/sqrt(2*2)
    assert kendall_tau_b(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([2.0, 1.0, 1.0])) == pytest.approx(0.5)
    assert kendall_tau_b(tiers, torch.zeros(4)) == 0.0  # undefined -> 0


def test_kendall_tau_b_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        truth = torch.randint(0, 3, (7,), generator=g).float()
        scores = torch.randint(0, 4, (7,), generator=g).float()
        expected = scipy_stats.kendalltau(truth.numpy(), scores.numpy(), variant="b").statistic
        if not math.isnan(expected):
            assert kendall_tau_b(truth, scores) == pytest.approx(expected, abs=1e-9)


def test_ranking_metrics_micro_macro_exact():
    pairs = build_rank_pairs([[1, 2], [1, 1, 1]])  # 2 pairs, 3 pairs
    scores = torch.tensor([1.0, 0.0, 2.0,    # list 0: 1 of 2 right
                           3.0, 2.0, 1.0])   # list 1: 3 of 3 right
    m = ranking_metrics(scores, pairs)
    assert m["pairwise_accuracy"] == pytest.approx(4 / 5)
    assert m["pairwise_accuracy_list_mean"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["exact_order_accuracy"] == pytest.approx(0.5)
    # list 0: truth [1,0,0], scores [1,0,2]: C=1, D=1 -> 0; list 1 strict perfect -> 1
    assert m["kendall_tau_b"] == pytest.approx(0.5)
    # best achievable: list 0 sqrt(2/3), list 1 1
    assert m["kendall_tau_b_max"] == pytest.approx((math.sqrt(2 / 3) + 1) / 2, abs=1e-6)


def test_evaluate_reward_model_tables_and_truncation():
    lists = [
        {"id": "a", "prompt": "", "tiers": [["好好", "好"], ["差", "差差"]]},             # all right
        {"id": "b", "prompt": "", "tiers": [["好"], ["很好很好很好很好很好"], ["差"]]},    # 2nd truncated: '很好很好很好很好' = 4 好
        {"id": "c", "prompt": "这个", "tiers": [["差"], ["好"]]},                        # wrong
    ]
    out = evaluate_reward_model(LexiconScorer(), lists)
    m = out["metrics"]
    assert (m["n_lists"], m["n_texts"], m["n_pairs"]) == (3, 9, 4 + 3 + 1)
    assert m["n_truncated_texts"] == 1 and m["truncated_fraction"] == pytest.approx(1 / 9)
    # list a: 4/4; list b: (好 vs 4好) wrong, 好>差 right, 4好>差 right -> 2/3; list c: 0/1
    assert m["pairwise_accuracy"] == pytest.approx(6 / 8)
    assert m["exact_order_accuracy"] == pytest.approx(1 / 3)
    assert m["reward_mean_best_tier"] == pytest.approx((2 + 1 + 1 - 1) / 4)
    assert m["reward_mean_worst_tier"] == pytest.approx((-1 - 2 - 1 + 1) / 4)
    first = out["per_text"][0]
    assert first == {"list_id": "a", "tier": 0, "n_tiers": 2, "score": 2.0, "n_tokens": 2, "truncated": False,
                     "text": "好好"}
    assert out["per_text"][-1]["text"] == "这个好"  # the prompt is prepended
    assert [r["exact_order"] for r in out["per_list"]] == [True, False, False]
    assert out["by_list_length"] == [
        {"k": 2, "n_lists": 1, "n_pairs": 1, "pairwise_accuracy": 0.0, "exact_order_accuracy": 0.0,
         "kendall_tau_b": -1.0},
        {"k": 3, "n_lists": 1, "n_pairs": 3, "pairwise_accuracy": pytest.approx(2 / 3),
         "exact_order_accuracy": 0.0, "kendall_tau_b": pytest.approx(1 / 3)},
        {"k": 4, "n_lists": 1, "n_pairs": 4, "pairwise_accuracy": 1.0, "exact_order_accuracy": 1.0,
         "kendall_tau_b": pytest.approx(4 / math.sqrt(24))},
    ]


def test_bad_lists_raise_with_id_or_are_skipped_and_counted():
    lists = [{"id": "ok", "tiers": [["好"], ["差"]]},
             {"id": "lonely", "tiers": [["好"]]},
             {"id": "flat", "tiers": [["好", "差"]]}]
    with pytest.raises(InvalidRankListError, match="'lonely'.*at least two texts"):
        evaluate_reward_model(LexiconScorer(), lists)
    out = evaluate_reward_model(LexiconScorer(), lists, on_invalid="skip")
    m = out["metrics"]
    assert (m["n_lists"], m["n_lists_skipped"], m["skipped_single_text"], m["skipped_single_tier"]) == (1, 2, 1, 1)
    with pytest.raises(ValueError, match="no valid rank list"):
        evaluate_reward_model(LexiconScorer(), lists[1:], on_invalid="skip")


def test_rank_list_shapes_accepted():
    class Obj:
        id, prompt, tiers = "o1", "p:", [["x"], ["y"]]

    assert as_rank_list(Obj(), 0).texts() == ["p:x", "p:y"]
    assert as_rank_list([["x"], ["y", "z"]], 4).id == "#4"
    views, skipped = prepare_lists([{"id": "d", "tiers": "not tiers"}], on_invalid="skip")
    assert views == [] and skipped == {"invalid_field": 1}


def test_by_list_length_groups():
    rows = [{"k": 4, "n_pairs": 4, "pairs_correct": 4, "exact_order": True, "kendall_tau_b": 0.8},
            {"k": 4, "n_pairs": 4, "pairs_correct": 2, "exact_order": False, "kendall_tau_b": 0.0}]
    assert by_list_length(rows) == [{"k": 4, "n_lists": 2, "n_pairs": 8, "pairwise_accuracy": 0.75,
                                     "exact_order_accuracy": 0.5, "kendall_tau_b": 0.4}]
