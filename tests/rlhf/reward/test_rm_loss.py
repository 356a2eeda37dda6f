"""rank_loss and build_rank_pairs against values worked out by hand."""
import math

import pytest
import torch

from rlhf.reward.loss import build_rank_pairs, per_list_mean, rank_loss


def softplus_neg(d: float) -> float:
    """-log sigmoid(d) = log(1 + e^-d)."""
    return math.log1p(math.exp(-d))


def test_pairs_skip_ties_and_are_offset_per_list():
    # list 0: a > {b, c} (b, c tied); list 1: strict x > y > z
    pairs = build_rank_pairs([[["a"], ["b", "c"]], [["x"], ["y"], ["z"]]])
    assert pairs.winner.tolist() == [0, 0, 3, 3, 4]
    assert pairs.loser.tolist() == [1, 2, 4, 5, 5]
    assert pairs.pair_list.tolist() == [0, 0, 1, 1, 1]
    assert pairs.tier_gap.tolist() == [1.0, 1.0, 1.0, 2.0, 1.0]
    assert pairs.text_list.tolist() == [0, 0, 0, 1, 1, 1]
    assert pairs.text_tier.tolist() == [0, 1, 1, 0, 1, 2]
    assert (pairs.n_lists, pairs.n_texts, pairs.n_pairs) == (2, 6, 5)


def test_corpus_list_of_four_has_four_cross_tier_pairs_and_sizes_work():
    pairs = build_rank_pairs([[2, 2]])  # tier sizes instead of texts
    assert list(zip(pairs.winner.tolist(), pairs.loser.tolist())) == [(0, 2), (0, 3), (1, 2), (1, 3)]


def test_rank_loss_averages_per_list_then_over_lists():
    pairs = build_rank_pairs([[["a"], ["b", "c"]], [["x"], ["y"], ["z"]]])
    scores = torch.tensor([1.0, 0.0, 2.0, 2.0, 0.0, 1.0])
    loss, stats = rank_loss(scores, pairs)
    # list 0: d = 1, -1 -> (0.3132617 + 1.3132617) / 2 = 0.8132617
    # list 1: d = 2 (x,y), 1 (x,z), -1 (y,z) -> (0.1269280 + 0.3132617 + 1.3132617) / 3 = 0.5844838
    assert loss.item() == pytest.approx((0.8132617 + 0.5844838) / 2, abs=1e-6)
    assert loss.item() == pytest.approx(((softplus_neg(1) + softplus_neg(-1)) / 2
                                         + (softplus_neg(2) + softplus_neg(1) + softplus_neg(-1)) / 3) / 2, abs=1e-6)
    # the mean over all 5 pairs would differ (0.675995): lists are not expanded into independent pairs
    assert abs(loss.item() - 0.675995) > 0.01
    assert stats["pair_accuracy"] == pytest.approx(3 / 5)
    assert stats["exact_order_accuracy"] == 0.0
    assert stats["center_loss"] == pytest.approx(((1 + 0 + 4) / 3 + (4 + 0 + 1) / 3) / 2)


def test_gradient_weights_each_list_equally():
    # list 0 has 1 pair, list 1 has 4 pairs; all scores 0, so every pair has d/dr_w = -1/2
    pairs = build_rank_pairs([[["a"], ["b"]], [["p", "q"], ["r", "s"]]])
    scores = torch.zeros(6, requires_grad=True)
    loss, _ = rank_loss(scores, pairs)
    assert loss.item() == pytest.approx(math.log(2))
    loss.backward()
    # list 0: 1/B * 1/1 * (-1/2) = -0.25 on a; list 1: p wins 2 of 4 pairs: 1/2 * 1/4 * 2 * (-1/2) = -0.125
    assert scores.grad.tolist() == pytest.approx([-0.25, 0.25, -0.125, -0.125, 0.125, 0.125])


def test_margin_constant_and_per_tier_gap():
    pairs = build_rank_pairs([[["x"], ["y"], ["z"]]])
    scores = torch.tensor([2.0, 1.0, 0.0])  # d = 1 (x,y), 2 (x,z), 1 (y,z)
    loss, _ = rank_loss(scores, pairs, margin=0.5)
    assert loss.item() == pytest.approx((softplus_neg(0.5) * 2 + softplus_neg(1.5)) / 3, abs=1e-6)
    # tier gap 2 for (x,z): margin 1.0 each tier -> d - m = 0, 0, 0 -> log 2
    loss, _ = rank_loss(scores, pairs, margin=1.0, margin_per_tier_gap=True)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)


def test_centring_adds_coef_times_mean_squared_score_per_list():
    pairs = build_rank_pairs([[["w"], ["l"]]])
    scores = torch.tensor([1.0, -1.0])
    loss, stats = rank_loss(scores, pairs, center_coef=0.1)
    # log(1 + e^-2) = 0.1269280; mean(r^2) = 1 -> + 0.1 (TRL's (r_w + r_l)^2 would be 0 here)
    assert loss.item() == pytest.approx(0.1269280 + 0.1, abs=1e-6)
    assert stats["rank_loss"] == pytest.approx(0.1269280, abs=1e-6)


def test_score_ties_count_as_wrong_and_exact_order_needs_every_pair():
    pairs = build_rank_pairs([[["a", "b"], ["c"]], [["d"], ["e"]]])
    scores = torch.tensor([3.0, 1.0, 1.0, 5.0, 0.0])  # list 0: a>c right, b==c tie (wrong); list 1 right
    _, stats = rank_loss(scores, pairs)
    assert stats["pair_accuracy"] == pytest.approx(2 / 3)
    assert stats["exact_order_accuracy"] == pytest.approx(0.5)


def test_variable_k_in_one_batch():
    pairs = build_rank_pairs([[1, 4], [1, 1]])  # K=5 (4 pairs) and K=2 (1 pair)
    assert pairs.n_pairs == 5 and pairs.n_texts == 7
    scores = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    loss, _ = rank_loss(scores, pairs)
    assert loss.item() == pytest.approx((softplus_neg(1.0) + math.log(2)) / 2, abs=1e-6)


def test_per_list_mean():
    values = torch.tensor([1.0, 3.0, 10.0])
    assert per_list_mean(values, torch.tensor([0, 0, 1]), 2).tolist() == [2.0, 10.0]


@pytest.mark.parametrize("tiers", [[["only"]], [["a", "b", "c"]], [["a"], []], [], [3], [1, 0]])
def test_lists_without_two_nonempty_tiers_are_refused_naming_the_list(tiers):
    """Validation (and its reason codes) is rlhf.data.ranklist.check_tiers'; this is only the precondition."""
    with pytest.raises(ValueError, match="rank list 'rl-7'.*check_tiers"):
        build_rank_pairs([[["x"], ["y"]], tiers], ["rl-1", "rl-7"])


def test_wrong_score_shape_is_rejected():
    pairs = build_rank_pairs([[["a"], ["b"]]])
    with pytest.raises(ValueError, match=r"expected \(2,\)"):
        rank_loss(torch.zeros(3), pairs)


def test_rank_pairs_move_to_the_scores_device():
    """The pairs are built on the CPU; rank_loss moves them to the scores' device (CUDA: index_add needs both
    there; an H200 run of 2026-12-04 failed on exactly this before)."""
    pairs = build_rank_pairs([[["a"], ["b", "c"]], [["d", "e"], ["f"]]])
    assert pairs.to("cpu") is pairs
    moved = pairs.to("meta")
    assert all(t.device.type == "meta" for t in (moved.winner, moved.loser, moved.pair_list, moved.tier_gap,
                                                  moved.text_list, moved.text_tier))
    assert (moved.n_lists, moved.n_pairs, moved.n_texts) == (pairs.n_lists, pairs.n_pairs, pairs.n_texts)
