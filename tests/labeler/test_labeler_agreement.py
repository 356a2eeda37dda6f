"""Agreement between annotators: pairwise agreement and Kendall's tau-b, worked by hand."""
from __future__ import annotations


import pytest

from labeler.agreement import compare_labels, compare_tierings, summarize, tier_of
from labeler.store import Label


def make(uid, annotator, tiers, prompt="p"):
    return Label(id=0, uid=uid, task_id=None, prompt=prompt, tiers=tiers, annotator=annotator, created_at="",
                 model=None, model_version=None)


def test_identical_strict_rankings_agree_fully():
    t = tier_of([["a"], ["b"], ["c"], ["d"]])
    assert compare_tierings(t, t) == (6, 6, 1.0, 4)


def test_reversed_ranking():
    pairs, agreeing, tau, shared = compare_tierings(tier_of([["a"], ["b"], ["c"]]), tier_of([["c"], ["b"], ["a"]]))
    assert (pairs, agreeing, tau, shared) == (3, 0, -1.0, 3)


def test_ties_by_hand():
    # A: a > b = c > d      B: a > b > c = d
    # pairs: ab (>,>) ac (>,>) ad (>,>) bc (=,>) bd (>,>) cd (>,=)
    # agree 4 of 6; C = 4, D = 0, T_A = 1, T_B = 1 -> tau_b = 4 / sqrt(5 * 5) = 0.8
    a = tier_of([["a"], ["b", "c"], ["d"]])
    b = tier_of([["a"], ["b"], ["c", "d"]])
    pairs, agreeing, tau, _ = compare_tierings(a, b)
    assert (pairs, agreeing) == (6, 4)
    assert tau == pytest.approx(0.8)


def test_tau_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    a = tier_of([["a", "e"], ["b", "c"], ["d"], ["f"]])
    b = tier_of([["b"], ["a", "c", "d"], ["e", "f"]])
    shared = sorted(a)
    expected = scipy_stats.kendalltau([a[x] for x in shared], [b[x] for x in shared], variant="b").statistic
    assert compare_tierings(a, b)[2] == pytest.approx(expected)


def test_all_tied_gives_undefined_tau_but_an_agreement():
    pairs, agreeing, tau, _ = compare_tierings(tier_of([["a", "b"]]), tier_of([["a"], ["b"]]))
    assert (pairs, agreeing, tau) == (1, 0, None)


def test_only_shared_texts_of_the_same_prompt_by_different_annotators_are_compared():
    labels = [
        make("1", "alice", [["a"], ["b"], ["c"], ["x"]]),
        make("2", "bob", [["c"], ["a"], ["y"], ["b"]]),       # shares a, b, c with 1
        make("3", "bob", [["a"], ["b"]], prompt="other"),      # other prompt: never compared
        make("4", "alice", [["b"], ["a"]]),                    # same annotator as 1: not compared with it
        make("5", None, [["a"], ["b"]]),                       # nobody: left out
    ]
    comparisons = compare_labels(labels)
    got = {(c.label_a, c.label_b): c for c in comparisons}
    assert set(got) == {("1", "2"), ("4", "2")}
    c = got[("1", "2")]
    # alice a > b > c, bob c > a > b: ab agree, ac disagree, bc disagree
    assert (c.annotator_a, c.annotator_b, c.shared, c.pairs, c.agreeing) == ("alice", "bob", 3, 3, 1)
    assert c.tau_b == pytest.approx(-1 / 3)
    rows = summarize(comparisons)
    assert [(r.annotator_a, r.annotator_b) for r in rows] == [("alice", "bob"), ("all", "all")]
    # label 4 says b > a, label 2 a > b: the one pair disagrees, tau -1; pooled (1 + 0) / (3 + 1) agree
    assert got[("4", "2")].tau_b == -1.0
    assert rows[0].agreement == pytest.approx(0.25) and rows[0].comparisons == 2 and rows[0].pairs == 4
    assert rows[0].mean_tau_b == pytest.approx((-1 / 3 - 1) / 2)
    assert summarize([]) == []
