"""Text metrics on hand-computed examples."""
import pytest

from rlhf.evaluation.text_metrics import (distinct_n, eos_rate, frequent_ngrams, has_repeated_ngram, mean_length,
                                          ngrams, repetition_rate, win_rate)


def test_ngrams():
    assert ngrams("abcd", 2) == [("a", "b"), ("b", "c"), ("c", "d")]
    assert ngrams("ab", 3) == []
    with pytest.raises(ValueError, match="n=0"):
        ngrams("ab", 0)


def test_distinct_n_pools_over_the_set():
    assert distinct_n(["abab"], 2) == pytest.approx(2 / 3)   # ab, ba, ab
    assert distinct_n(["ab", "ab"], 1) == pytest.approx(2 / 4)  # a b a b
    assert distinct_n(["好好好好"], 1) == pytest.approx(1 / 4)
    assert distinct_n(["很好", "很差"], 2) == 1.0
    assert distinct_n([["很", "好"], ["很", "好"]], 1) == pytest.approx(2 / 4)  # token lists work too
    assert distinct_n([], 1) == 0.0 and distinct_n(["a", ""], 2) == 0.0  # no n-gram: defined as 0


def test_repetition_rate_counts_samples_with_a_repeated_ngram():
    assert has_repeated_ngram("abcabc", 3)          # abc twice
    assert has_repeated_ngram("aaaa", 3)            # aaa, aaa overlap
    assert not has_repeated_ngram("abcdab", 3)
    assert repetition_rate(["abcabc", "abcd", "aaaa", "ab"], 3) == pytest.approx(2 / 4)
    assert repetition_rate(["abab"], 2) == 1.0 and repetition_rate([]) == 0.0


def test_length_and_eos_rate():
    assert mean_length(["ab", "abcd", ""]) == pytest.approx(2.0)
    assert mean_length([]) == 0.0
    assert eos_rate([True, False, True, True]) == 0.75
    assert eos_rate([]) == 0.0


def test_win_rate_ties_count_half():
    # wins 1, tie 0.5, loss 0, tie 0.5 -> 2 / 4
    assert win_rate([0.9, 0.5, 0.1, 0.7], [0.1, 0.5, 0.2, 0.7]) == pytest.approx(0.5)
    assert win_rate([1, 1, 0], [0, 0, 0]) == pytest.approx(2.5 / 3)
    assert win_rate([0.2], [0.3]) == 0.0
    with pytest.raises(ValueError, match="3 scores against 2"):
        win_rate([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="no pairs"):
        win_rate([], [])


def test_frequent_ngrams_counts_samples_not_occurrences():
    texts = ["很漂亮很漂亮", "漂亮", "不错", "不错，漂亮"]
    top = frequent_ngrams(texts, 2, k=3)
    # the first sample says 漂亮 twice but counts once; among the 0.25 ties the first seen (很漂) wins
    assert top == [(("漂", "亮"), 0.75), (("不", "错"), 0.5), (("很", "漂"), 0.25)]
    assert frequent_ngrams([], 2) == [] and frequent_ngrams(["a"], 2) == []
