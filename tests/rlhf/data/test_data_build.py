"""Corpus rank lists (tiers, K, positives above negatives, caps) and the prompt pool."""
import pytest

from rlhf.data.build import (build_corpus_ranklists, build_prompt_pool, cue_pattern, lm_lines, opinion_prefix,
                             purpose_rng, sample_prefixes)
from rlhf.data.clean import LabelledText
from rlhf.data.ranklist import RankList


def corpus(n_pos, n_neg):
    return [LabelledText(f"好评{i}", 1) for i in range(n_pos)] + [LabelledText(f"差评{i}", 0) for i in range(n_neg)]


def test_lists_put_a_positive_tier_above_a_negative_tier():
    lists = build_corpus_ranklists(corpus(11, 20), split="dev", list_size=4, positives=2, max_lists=None, seed=0)
    assert len(lists) == 5  # 11 positives // 2 per list
    for rl in lists:
        assert len(rl.tiers) == 2 and [len(t) for t in rl.tiers] == [2, 2]
        assert all(t.startswith("好评") for t in rl.tiers[0]) and all(t.startswith("差评") for t in rl.tiers[1])
        assert len(rl.pairs()) == 4 and all(w.startswith("好评") and l.startswith("差评") for w, l in rl.pairs())
        assert rl.prompt == "" and rl.source == "corpus"
    assert [rl.id for rl in lists] == [f"corpus-dev-{i:06d}" for i in range(5)]
    used = [t for rl in lists for t in rl.texts()]
    assert len(used) == len(set(used)) == 20  # each text at most once in the split


def test_uneven_lists_cap_and_scarcer_label():
    lists = build_corpus_ranklists(corpus(30, 7), split="train", list_size=5, positives=1, max_lists=None, seed=0)
    assert len(lists) == 1 and [len(t) for t in lists[0].tiers] == [1, 4]  # 7 negatives // 4
    capped = build_corpus_ranklists(corpus(30, 30), split="train", list_size=4, positives=2, max_lists=3, seed=0)
    assert len(capped) == 3
    assert build_corpus_ranklists(corpus(30, 30), split="train", list_size=4, positives=2, max_lists=0, seed=0) == []
    with pytest.raises(ValueError, match="expected 1..3"):
        build_corpus_ranklists(corpus(4, 4), split="train", list_size=4, positives=4, max_lists=None, seed=0)


def test_lists_are_seeded():
    args = dict(split="train", list_size=4, positives=2, max_lists=None)
    a = build_corpus_ranklists(corpus(40, 40), seed=1, **args)
    assert a == build_corpus_ranklists(corpus(40, 40), seed=1, **args)
    assert a != build_corpus_ranklists(corpus(40, 40), seed=2, **args)


def test_prefixes_are_shorter_than_their_text_distinct_and_in_range():
    texts = ["这本书很好看我很喜欢", "房间很干净服务也不错", "快递太慢了包装也破了", "短", "一二三四"]
    prefixes = sample_prefixes(texts * 3, n=100, min_chars=4, max_chars=6, rng=purpose_rng(0, "t"), exclude={"这本书很"})
    assert len(prefixes) == len(set(prefixes)) and "这本书很" not in prefixes
    for p in prefixes:
        assert 4 <= len(p) <= 6
        assert any(t.startswith(p) and len(t) > len(p) for t in texts)
    assert not {"短", "一二三四"} & set(prefixes)  # a prefix must leave something to complete
    assert len(prefixes) == 3  # texts are visited once each (the * 3 copies are the same texts)


CUES = cue_pattern(["很", "非常", "感觉", "太"])


@pytest.mark.parametrize("text,expected", [
    ("这本书很好看", "这本书很"),              # cut right after the cue: the completion states the opinion
    ("房间非常干净", "房间非常"),              # the longest cue at a position ("非常", not a shorter one)
    ("很好很好很好看的书", "很好很好很"),      # the first cue that ends at or after min_chars (4)
    ("刚收到货，感觉不错", "刚收到货，感觉"),
    ("这是一本写给大人的书，内容太多", None),   # no cue ends within max_chars (8)
    ("质量太", None),                         # the cue ends the text: nothing left to complete
    ("还可以吧", None),                       # no cue at all
])
def test_opinion_prefix_ends_with_the_first_cue_in_range(text, expected):
    assert opinion_prefix(text, CUES, 4, 8) == expected


def test_opinion_prefixes_are_cut_after_a_cue_and_texts_without_one_are_passed_over():
    texts = ["这本书很好看我很喜欢", "房间非常干净服务也不错", "快递慢了包装也破了", "屏幕太小了", "酒店位置很好"]
    prefixes = sample_prefixes(texts, n=100, min_chars=3, max_chars=8, rng=purpose_rng(0, "t"), exclude={"酒店位置很"},
                               cues=["很", "非常", "太"])
    assert sorted(prefixes) == sorted(["这本书很", "房间非常", "屏幕太"])
    with pytest.raises(ValueError, match="no cue words"):
        sample_prefixes(texts, n=1, min_chars=3, max_chars=8, rng=purpose_rng(0, "t"), exclude=set(), cues=[])


def test_opinion_prompt_pool_is_seeded_and_disjoint_across_splits():
    train = [f"第{i}家酒店的服务很好" for i in range(40)]
    test = [f"第{i}本书写得非常好" for i in range(40)] + train[:5]
    args = dict(counts={"train": 10, "test": 6}, published=["这部电影很"], min_chars=4, max_chars=10, cues=["很", "非常"])
    pool = build_prompt_pool({"train": train, "test": test}, seed=0, **args)
    assert pool == build_prompt_pool({"train": train, "test": test}, seed=0, **args)
    heldout = {s: [r["prompt"] for r in pool if r["split"] == s and r["source"] == "heldout"] for s in ("train", "test")}
    assert len(heldout["train"]) == 9 and len(heldout["test"]) == 5
    assert all(p.endswith(("很", "非常")) for ps in heldout.values() for p in ps)
    assert not set(heldout["train"]) & set(heldout["test"])


def test_prompt_pool_has_published_prompts_in_both_splits_and_disjoint_heldout():
    published = ["刚收到货，感觉", "这部电影很"]
    train = [f"训练评论第{i}条内容很长" for i in range(50)]
    test = [f"测试评论第{i}条内容很长" for i in range(50)] + train[:10]  # overlapping texts
    pool = build_prompt_pool({"train": train, "test": test}, counts={"train": 12, "test": 6}, published=published,
                             min_chars=6, max_chars=9, seed=0)
    by = lambda split, source: [r["prompt"] for r in pool if r["split"] == split and r["source"] == source]
    assert by("train", "published") == published and by("test", "published") == published
    assert len(by("train", "heldout")) == 10 and len(by("test", "heldout")) == 4
    assert all(any(t.startswith(p) for t in train) for p in by("train", "heldout"))
    assert all(any(t.startswith(p) for t in test) for p in by("test", "heldout"))
    assert not set(by("train", "heldout")) & set(by("test", "heldout"))
    assert list(pool[0]) == ["prompt", "source", "split"]


def test_lm_lines_are_distinct_split_texts_then_list_texts():
    texts = [LabelledText("甲", 1), LabelledText("乙", 0)]
    lists = [RankList(id="h", prompt="", tiers=[["乙"], ["丙"]])]
    assert lm_lines(texts, lists) == ["甲", "乙", "丙"]
