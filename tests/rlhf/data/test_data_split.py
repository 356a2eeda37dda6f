"""Splits: deterministic, close to the fractions, and never sharing a text (property-style)."""
import random

from rlhf.data.clean import LabelledText
from rlhf.data.config import SplitFractions
from rlhf.data.ranklist import RankList
from rlhf.data.split import assign_split, split_ranklists, split_texts, unit_hash


def test_unit_hash_is_stable_and_seeded():
    assert unit_hash("好", 0) == unit_hash("好", 0)
    assert unit_hash("好", 0) != unit_hash("好", 1)
    assert 0 <= unit_hash("好", 0) < 1
    # blake2b of "42\x1f刚收到货", first 8 bytes / 2**64: the split must not depend on the process
    # (PYTHONHASHSEED) or the platform
    assert abs(unit_hash("刚收到货", 42) - 0.4384384362248594) < 1e-15
    assert assign_split("x", 0, SplitFractions(train=1.0, dev=0.0, test=0.0)) == "train"


def test_split_texts_follows_fractions_and_ignores_input_order():
    texts = [LabelledText(f"评论{i}", i % 2) for i in range(5000)]
    fractions = SplitFractions(train=0.7, dev=0.1, test=0.2)
    splits = split_texts(texts, 3, fractions)
    sizes = {k: len(v) for k, v in splits.items()}
    assert sum(sizes.values()) == 5000
    assert abs(sizes["train"] - 3500) < 150 and abs(sizes["dev"] - 500) < 90 and abs(sizes["test"] - 1000) < 120
    shuffled = texts[:]
    random.Random(0).shuffle(shuffled)
    again = split_texts(shuffled, 3, fractions)
    assert {k: {t.text for t in v} for k, v in again.items()} == {k: {t.text for t in v} for k, v in splits.items()}
    other_seed = split_texts(texts, 4, fractions)
    assert {t.text for t in other_seed["test"]} != {t.text for t in splits["test"]}


def test_pinned_texts_always_train():
    texts = [LabelledText(f"评论{i}", 1) for i in range(200)]
    pinned = {f"评论{i}" for i in range(0, 200, 3)}
    splits = split_texts(texts, 0, SplitFractions(train=0.2, dev=0.4, test=0.4), pinned_train=pinned)
    assert pinned <= {t.text for t in splits["train"]}


def _random_lists(rng, n_lists, vocab, prefix="l"):
    lists = []
    for i in range(n_lists):
        texts = rng.sample(vocab, rng.randint(2, 5))
        cut = rng.randint(1, len(texts) - 1)
        lists.append(RankList(id=f"{prefix}{i}", prompt="", tiers=[texts[:cut], texts[cut:]]))
    return lists


def test_split_ranklists_never_shares_a_text_between_splits():
    for trial in range(30):
        rng = random.Random(trial)
        vocab = [f"t{j}" for j in range(rng.randint(20, 400))]  # small vocabularies force overlaps
        lists = _random_lists(rng, 150, vocab)
        pinned = _random_lists(rng, rng.randint(0, 10), vocab, prefix="h")
        splits, dropped = split_ranklists(lists, trial, SplitFractions(), pinned_train=pinned)
        texts = {k: {t for rl in v for t in rl.texts()} for k, v in splits.items()}
        assert not texts["train"] & texts["dev"]
        assert not texts["train"] & texts["test"]
        assert not texts["dev"] & texts["test"]
        ids = [rl.id for v in splits.values() for rl in v]
        assert len(ids) == len(set(ids))  # a list is in at most one split
        assert len(ids) + dropped == len(lists) + len(pinned)  # ... or counted as dropped
        assert all(any(p is rl for rl in splits["train"]) for p in pinned)  # human lists always train


def test_split_ranklists_drops_a_later_split_list_that_shares_a_text():
    to_test = SplitFractions(train=1e-12, dev=0.0, test=1 - 1e-12)  # every unpinned list hashes to test
    human = RankList(id="h", prompt="", tiers=[["共享"], ["乙"]])
    shares = RankList(id="a", prompt="", tiers=[["共享"], ["甲"]])
    alone = RankList(id="b", prompt="", tiers=[["丙"], ["丁"]])
    splits, dropped = split_ranklists([shares, alone], 0, to_test, pinned_train=[human])
    assert dropped == 1
    assert [rl.id for rl in splits["train"]] == ["h"] and [rl.id for rl in splits["test"]] == ["b"]
    assert splits["dev"] == []
