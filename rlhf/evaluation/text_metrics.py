"""Text metrics of a set of samples: diversity, repetition, length, EOS rate, win rate.

Pure functions over plain Python values. A "text" is a string, read character by character
(the right unit for Chinese), or any sequence of tokens (a list of words works the same way).
Every metric of an empty set is defined (stated per function), so a degenerate policy that
emits nothing gets numbers, not an exception.
"""
from __future__ import annotations

from collections import Counter
from typing import Hashable, Sequence


def ngrams(text: Sequence[Hashable], n: int) -> list[tuple]:
    """The ``len(text) - n + 1`` contiguous n-grams of ``text`` (none when it is shorter than n)."""
    if n < 1:
        raise ValueError(f"n-gram order must be >= 1, got n={n}")
    return [tuple(text[i:i + n]) for i in range(len(text) - n + 1)]


def distinct_n(texts: Sequence[Sequence[Hashable]], n: int) -> float:
    """Distinct-n (Li et al. 2016): unique n-grams / total n-grams, pooled over the whole set.

    ``distinct_n(["abab"], 2)`` = |{ab, ba}| / 3 = 2/3. In [0, 1]; 0.0 when the set has no
    n-gram at all (no texts, or all shorter than n): nothing generated, no diversity.
    """
    total, unique = 0, set()
    for text in texts:
        grams = ngrams(text, n)
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else 0.0


def frequent_ngrams(texts: Sequence[Sequence[Hashable]], n: int, k: int = 10) -> list[tuple[tuple, float]]:
    """The ``k`` n-grams found in the most samples, with the share of samples containing each.

    Counts samples, not occurrences (a sample repeating an n-gram counts once), so a share of 0.7
    means 70% of the samples say it: the at-a-glance sign of a policy that found one phrase the
    reward likes. Ties are broken by first appearance. ``[]`` for no texts.
    """
    texts = list(texts)
    counts = Counter(gram for text in texts for gram in dict.fromkeys(ngrams(text, n)))  # once per sample, in order
    return [(gram, count / len(texts)) for gram, count in counts.most_common(k)]


def has_repeated_ngram(text: Sequence[Hashable], n: int = 3) -> bool:
    """Whether some n-gram occurs at least twice in ``text`` (overlaps count: "aaaa" repeats "aaa")."""
    grams = ngrams(text, n)
    return len(set(grams)) < len(grams)


def repetition_rate(texts: Sequence[Sequence[Hashable]], n: int = 3) -> float:
    """Share of samples that contain a repeated n-gram (see :func:`has_repeated_ngram`); 0.0 for no texts."""
    texts = list(texts)
    if not texts:
        return 0.0
    return sum(has_repeated_ngram(t, n) for t in texts) / len(texts)


def mean_length(texts: Sequence[Sequence[Hashable]]) -> float:
    """Mean length in units (characters of a string, tokens of a list); 0.0 for no texts."""
    texts = list(texts)
    return sum(len(t) for t in texts) / len(texts) if texts else 0.0


def eos_rate(eos_flags: Sequence[bool]) -> float:
    """Share of samples that ended with an EOS token within the generation budget; 0.0 for none."""
    flags = [bool(f) for f in eos_flags]
    return sum(flags) / len(flags) if flags else 0.0


def win_rate(a_scores: Sequence[float], b_scores: Sequence[float]) -> float:
    """Share of paired samples where ``a`` scores above ``b``; a tie counts half a win.

    Pairs are (a_scores[i], b_scores[i]): samples of the same prompt and seed. 0.5 means no
    difference. Raises ``ValueError`` for lists of different lengths or no pairs.
    """
    a, b = list(a_scores), list(b_scores)
    if len(a) != len(b):
        raise ValueError(f"win_rate: {len(a)} scores against {len(b)}; expected paired lists of equal length")
    if not a:
        raise ValueError("win_rate: no pairs to compare")
    wins = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x, y in zip(a, b))
    return wins / len(a)
