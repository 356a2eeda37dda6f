"""Agreement between annotators who ranked the same candidates.

Two labels are compared when they share a prompt and at least two candidate texts; only the
shared texts count. For each unordered pair of shared texts ``(x, y)`` each label says ``x``
better, tied, or worse (the sign of the tier difference). From those relations:

- **pairwise agreement**: the share of text pairs on which both labels say the same (a tie
  counts as a relation, so both tying ``x`` and ``y`` agrees);
- **Kendall's tau-b**: ``(C - D) / sqrt((n0 - T1) (n0 - T2))`` over the ``n0`` pairs, with ``C``
  concordant and ``D`` discordant pairs, ``T1``/``T2`` the pairs tied by the first/second label
  (the tie-corrected tau, as ``scipy.stats.kendalltau``); undefined (``None``) when either label
  ties every shared pair.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from typing import Iterable, Sequence

from labeler.store import Label


@dataclass(frozen=True)
class PairComparison:
    """Two labels of the same candidates by two annotators."""

    annotator_a: str
    annotator_b: str
    label_a: str          # label uid
    label_b: str
    shared: int           # shared candidate texts
    pairs: int            # text pairs compared: shared * (shared - 1) / 2
    agreeing: int         # text pairs with the same relation in both labels
    tau_b: float | None

    @property
    def agreement(self) -> float:
        return self.agreeing / self.pairs


def tier_of(tiers: Sequence[Sequence[str]]) -> dict[str, int]:
    """Each text's tier index (0 = best)."""
    return {text: i for i, tier in enumerate(tiers) for text in tier}


def compare_tierings(a: dict[str, int], b: dict[str, int]) -> tuple[int, int, float | None, int]:
    """Compare two tierings (text -> tier) over their shared texts.

    Returns ``(pairs, agreeing, tau_b, shared)``; ``tau_b`` is ``None`` when undefined.
    """
    shared = sorted(set(a) & set(b))
    pairs = agreeing = concordant = discordant = tied_a = tied_b = 0
    for x, y in combinations(shared, 2):
        ra = (a[x] > a[y]) - (a[x] < a[y])
        rb = (b[x] > b[y]) - (b[x] < b[y])
        pairs += 1
        agreeing += ra == rb
        concordant += ra * rb > 0
        discordant += ra * rb < 0
        tied_a += ra == 0
        tied_b += rb == 0
    denominator = math.sqrt((pairs - tied_a) * (pairs - tied_b))
    tau = (concordant - discordant) / denominator if denominator else None
    return pairs, agreeing, tau, len(shared)


def compare_labels(labels: Iterable[Label]) -> list[PairComparison]:
    """Every comparison between two labels of different annotators sharing a prompt and >= 2 texts.

    Labels without an annotator are left out. Candidate pairs of labels are found through an index
    of (prompt, text), so unrelated labels are never compared.
    """
    labels = [label for label in labels if label.annotator]
    by_text: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        for text in {t for tier in label.tiers for t in tier}:
            by_text[(label.prompt, text)].append(i)
    shared_count: dict[tuple[int, int], int] = defaultdict(int)
    for members in by_text.values():
        for i, j in combinations(members, 2):
            shared_count[(i, j)] += 1
    out = []
    for (i, j), shared in sorted(shared_count.items()):
        a, b = labels[i], labels[j]
        if shared < 2 or a.annotator == b.annotator:
            continue
        if b.annotator < a.annotator:
            a, b = b, a
        pairs, agreeing, tau, _ = compare_tierings(tier_of(a.tiers), tier_of(b.tiers))
        out.append(PairComparison(a.annotator, b.annotator, a.uid, b.uid, shared, pairs, agreeing, tau))
    return out


@dataclass(frozen=True)
class AgreementRow:
    """Agreement of two annotators (or of everyone, ``annotator_a == "all"``) over their shared labels."""

    annotator_a: str
    annotator_b: str
    comparisons: int           # label pairs compared
    pairs: int                 # text pairs compared in all
    agreement: float           # agreeing text pairs / text pairs (pooled)
    mean_tau_b: float | None   # mean of the defined per-comparison tau-b


def summarize(comparisons: Sequence[PairComparison]) -> list[AgreementRow]:
    """One row per annotator pair (sorted by names), then an ``all`` row; empty when nothing was compared."""
    groups: dict[tuple[str, str], list[PairComparison]] = defaultdict(list)
    for c in comparisons:
        groups[(c.annotator_a, c.annotator_b)].append(c)

    def row(a: str, b: str, items: Sequence[PairComparison]) -> AgreementRow:
        taus = [c.tau_b for c in items if c.tau_b is not None]
        pairs = sum(c.pairs for c in items)
        return AgreementRow(a, b, len(items), pairs, sum(c.agreeing for c in items) / pairs,
                            sum(taus) / len(taus) if taus else None)

    rows = [row(a, b, items) for (a, b), items in sorted(groups.items())]
    if comparisons:
        rows.append(row("all", "all", comparisons))
    return rows
