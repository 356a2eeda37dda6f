"""A character n-gram language model with interpolated Kneser-Ney smoothing (pure Python).

A fluency yardstick that no model under test shaped: fit in seconds on real reviews, it says how
much a text reads like them, per character. Definitions (Chen & Goodman 1998, interpolated KN
with one absolute discount per order):

- A text is padded on the left with ``order - 1`` ``BOS`` symbols; only its characters are
  predicted (no end symbol: samples stop at a length limit, not where a review ends).
- Counts ``c_k(h w)`` of order k (h = the k-1 preceding symbols): raw counts at the top order;
  below it, continuation counts: the number of distinct symbols seen before ``h w``.
- ``P_k(w | h) = max(c_k(hw) - D_k, 0) / c_k(h·) + D_k * N1+(h·) / c_k(h·) * P_{k-1}(w | h[1:])``,
  with ``c_k(h·) = sum_w c_k(hw)`` and ``N1+(h·)`` the number of distinct w after h; an unseen
  ``h`` backs off whole: ``P_k(w | h) = P_{k-1}(w | h[1:])``. ``P_0(w) = 1 / V``, V = the number of
  distinct training characters + 1 (every unseen character shares that one slot).
- ``D_k = n1 / (n1 + 2 n2)`` (n1, n2: order-k n-grams seen once, twice), unless given.

The distribution over the V symbols sums to 1 for every context.
"""
from __future__ import annotations

import collections
import math
from typing import Iterable, Sequence

BOS = "\x02"


class CharNgramLM:
    """Interpolated Kneser-Ney character n-gram model; see the module docstring. Build with :meth:`fit`."""

    def __init__(self, order: int, counts: list[dict[str, dict[str, int]]], vocab: set[str],
                 discounts: list[float]):
        self.order = order
        self.counts = counts          # counts[k][h][w] = c_k(h w), k = 1..order (index 0 unused)
        self.totals = [{h: sum(ws.values()) for h, ws in c.items()} for c in counts]
        self.vocab = vocab
        self.discounts = discounts    # discounts[k] = D_k
        self.n_chars = 0

    @classmethod
    def fit(cls, texts: Iterable[str], order: int = 4, discount: float | None = None) -> "CharNgramLM":
        """Count the n-grams of ``texts`` up to ``order`` (>= 1); ``discount`` fixes every D_k (0 < D < 1)."""
        if order < 1:
            raise ValueError(f"CharNgramLM: order {order}; expected >= 1")
        if discount is not None and not 0 < discount < 1:
            raise ValueError(f"CharNgramLM: discount {discount}; expected 0 < discount < 1")
        raw: list[collections.Counter] = [collections.Counter() for _ in range(order + 1)]
        vocab: set[str] = set()
        n_chars = 0
        pad = BOS * (order - 1)
        for text in texts:
            vocab.update(text)
            n_chars += len(text)
            padded = pad + text
            for i in range(order - 1, len(padded)):
                for k in range(1, order + 1):
                    raw[k][padded[i - k + 1:i + 1]] += 1
        if not n_chars:
            raise ValueError("CharNgramLM.fit: no text to fit on")
        grams: list[collections.Counter] = [collections.Counter() for _ in range(order + 1)]
        grams[order] = raw[order]
        for k in range(1, order):  # continuation counts: distinct left neighbours of each k-gram
            for longer in raw[k + 1]:
                grams[k][longer[1:]] += 1
        counts: list[dict[str, dict[str, int]]] = [{} for _ in range(order + 1)]
        discounts = [0.0] * (order + 1)
        for k in range(1, order + 1):
            for gram, c in grams[k].items():
                counts[k].setdefault(gram[:-1], {})[gram[-1]] = c
            if discount is not None:
                discounts[k] = discount
            else:
                n1 = sum(1 for c in grams[k].values() if c == 1)
                n2 = sum(1 for c in grams[k].values() if c == 2)
                discounts[k] = min(max(n1 / (n1 + 2 * n2), 0.05), 0.95) if n1 + n2 else 0.75
        lm = cls(order, counts, vocab, discounts)
        lm.n_chars = n_chars
        return lm

    def prob(self, char: str, context: str) -> float:
        """P(char | context); only the last ``order - 1`` symbols of ``BOS * (order-1) + context`` matter."""
        n = self.order - 1
        padded = BOS * n + context
        return self._prob(char, padded[len(padded) - n:], self.order)

    def _prob(self, w: str, h: str, k: int) -> float:
        if k == 0:
            return 1.0 / (len(self.vocab) + 1)
        lower = self._prob(w, h[1:], k - 1)
        following = self.counts[k].get(h)
        if not following:
            return lower
        total = self.totals[k][h]
        d = self.discounts[k]
        return max(following.get(w, 0) - d, 0.0) / total + d * len(following) / total * lower

    def text_logprobs(self, text: str, start: int = 0, stop: int | None = None) -> list[float]:
        """Natural-log P(text[i] | text[:i]) for i in [start, stop) (``stop`` defaults to the end)."""
        n = self.order - 1
        padded = BOS * n + text
        stop = len(text) if stop is None else min(stop, len(text))
        return [math.log(self._prob(text[i], padded[i:i + n], self.order)) for i in range(start, stop)]

    def perplexity(self, texts: Sequence[str], starts: Sequence[int] | None = None,
                   stops: Sequence[int] | None = None) -> float:
        """Per-character perplexity ``exp(-sum log P / n chars)`` over the characters [start, stop) of each text.

        ``starts`` / ``stops`` (one per text, default 0 / the end): the characters before ``start``
        are context only (a prompt). NaN when no character is scored.
        """
        total, n = 0.0, 0
        for i, text in enumerate(texts):
            lps = self.text_logprobs(text, starts[i] if starts is not None else 0,
                                     stops[i] if stops is not None else None)
            total += sum(lps)
            n += len(lps)
        return math.exp(-total / n) if n else float("nan")
