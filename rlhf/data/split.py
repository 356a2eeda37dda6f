"""Deterministic train/dev/test splits that never share a text.

A text (corpus input) or a rank list's content (rank-list input) is hashed with the seed to a
number in [0, 1) that picks its split, so the assignment depends on nothing but the item and
the seed: not on file order, not on ``PYTHONHASHSEED``. Rank lists are split whole; a dev or
test list that shares a text with a list of an earlier split (train, then dev) is dropped and
counted, so no text crosses splits.
"""
from __future__ import annotations

import hashlib
from typing import Iterable

from rlhf.data.clean import LabelledText
from rlhf.data.config import SPLITS, SplitFractions
from rlhf.data.ranklist import RankList


def unit_hash(key: str, seed: int) -> float:
    """A number in [0, 1) from ``key`` and ``seed``, stable across processes and platforms."""
    digest = hashlib.blake2b(f"{seed}\x1f{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_split(key: str, seed: int, fractions: SplitFractions) -> str:
    """``"train"``, ``"dev"`` or ``"test"`` for ``key``, with probabilities ``fractions``."""
    u = unit_hash(key, seed)
    if u < fractions.train:
        return "train"
    if u < fractions.train + fractions.dev:
        return "dev"
    return "test"


def split_texts(texts: Iterable[LabelledText], seed: int, fractions: SplitFractions,
                pinned_train: set[str] = frozenset()) -> dict[str, list[LabelledText]]:
    """Distribute distinct ``texts`` over the splits (input order kept within a split).

    Texts in ``pinned_train`` (e.g. those of human rank lists, which always train) go to train.
    """
    out: dict[str, list[LabelledText]] = {name: [] for name in SPLITS}
    for item in texts:
        name = "train" if item.text in pinned_train else assign_split(item.text, seed, fractions)
        out[name].append(item)
    return out


def ranklist_key(rank_list: RankList) -> str:
    """The content of a list (prompt and texts, order-free) as one string, for hashing."""
    return "\x1e".join([rank_list.prompt, *sorted(rank_list.texts())])


def split_ranklists(lists: Iterable[RankList], seed: int, fractions: SplitFractions,
                    pinned_train: Iterable[RankList] = ()) -> tuple[dict[str, list[RankList]], int]:
    """Distribute whole rank lists over the splits so that no text is in two splits.

    ``pinned_train`` lists (human labels) go to train first. Each other list is hashed to a
    split by its content; then dev lists sharing a text with a train list, and test lists
    sharing one with a train or dev list, are dropped. Returns the splits (input order kept)
    and the number of lists dropped.
    """
    assigned: dict[str, list[RankList]] = {name: [] for name in SPLITS}
    assigned["train"] += list(pinned_train)
    for rank_list in lists:
        assigned[assign_split(ranklist_key(rank_list), seed, fractions)].append(rank_list)
    out: dict[str, list[RankList]] = {name: [] for name in SPLITS}
    taken: set[str] = set()  # texts of earlier splits
    dropped = 0
    for name in SPLITS:
        mine: set[str] = set()
        for rank_list in assigned[name]:
            texts = rank_list.texts()
            if taken.intersection(texts):
                dropped += 1
                continue
            out[name].append(rank_list)
            mine.update(texts)
        taken |= mine
    return out, dropped
