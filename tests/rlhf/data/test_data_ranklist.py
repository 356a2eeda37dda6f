"""RankList: pairs, canonical JSON, JSONL and published-TSV I/O, duplicate lists."""
import json

import pytest

from rlhf.data.errors import REJECT_REASONS, DataError, InvalidRecord
from rlhf.data.ranklist import (RankList, check_tiers, drop_duplicate_ranklists, ranklist_from_dict,
                                read_published_tsv, read_ranklists, write_ranklists)


def test_pairs_are_cross_tier_only_best_first():
    rl = RankList(id="x", prompt="", tiers=[["a"], ["b", "c"], ["d"]])
    # a beats b, c, d; b and c (tied) each beat d; b-c is never a pair.
    assert rl.pairs() == [("a", "b"), ("a", "c"), ("a", "d"), ("b", "d"), ("c", "d")]
    assert rl.texts() == ["a", "b", "c", "d"]


def test_pairs_of_two_tied_tiers():
    rl = RankList(id="x", prompt="", tiers=[["p1", "p2"], ["n1", "n2"]])
    assert sorted(rl.pairs()) == [("p1", "n1"), ("p1", "n2"), ("p2", "n1"), ("p2", "n2")]


@pytest.mark.parametrize("tiers, reason", [
    ([["a"], [""]], "empty_text"),
    ([["a"], ["b"], ["c" * 9]], "over_max_chars"),
    ([["a"], []], "empty_tier"),
    ([["only"]], "single_text"),
    ([], "single_text"),
    ([["a"], ["b", "a"]], "duplicate_text"),
    ([["a", "b", "c"]], "single_tier"),
])
def test_check_tiers_reasons(tiers, reason):
    """The one rank-list check (prepare, the labeller and the reward model use it) and its reason codes."""
    with pytest.raises(InvalidRecord) as info:
        check_tiers(tiers, max_chars=8)
    assert info.value.reason == reason and reason in REJECT_REASONS
    check_tiers([["a"], ["b", "c"]], max_chars=8)  # a valid list passes


def test_write_then_read_round_trips(tmp_path):
    lists = [RankList(id="a-1", prompt="这部电影很", tiers=[["好看"], ["一般", "还行"], ["难看"]], source="human",
                      annotator="ann", created_at="2024-01-01T00:00:00Z"),
             RankList(id="a-2", prompt="", tiers=[["好"], ["坏"]], source="corpus")]
    path = tmp_path / "lists.jsonl"
    assert write_ranklists(path, lists) == 2
    assert read_ranklists(path) == lists
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert list(first) == ["id", "prompt", "tiers", "source", "annotator", "created_at"]
    assert "好看" in path.read_text(encoding="utf-8")  # UTF-8, not \\u escapes


def test_defaults_for_optional_fields_and_normalised_texts(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text('{"tiers": [["  很\\t好 "], ["差"]]}\n', encoding="utf-8")
    (rl,) = read_ranklists(path, default_source="human")
    assert rl == RankList(id="mine-000001", prompt="", tiers=[["很 好"], ["差"]], source="human")


def test_source_must_be_known():
    with pytest.raises(Exception, match="'source' is 'web'"):
        ranklist_from_dict({"tiers": [["a"], ["b"]], "source": "web"}, default_id="x")


def test_read_published_tsv_each_text_is_a_tier(tmp_path):
    path = tmp_path / "pub.tsv"
    path.write_bytes("很好\t还行\t很差\n\n不错\t糟糕\n".encode("utf-8"))
    lists = read_published_tsv(path)
    assert [rl.tiers for rl in lists] == [[["很好"], ["还行"], ["很差"]], [["不错"], ["糟糕"]]]
    assert [rl.id for rl in lists] == ["pub-000001", "pub-000003"]  # ids carry the line number
    assert {rl.source for rl in lists} == {"import"} and {rl.prompt for rl in lists} == {""}
    assert lists[0].pairs() == [("很好", "还行"), ("很好", "很差"), ("还行", "很差")]


def test_empty_file_is_an_error_even_when_skipping(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n  \n", encoding="utf-8")
    for on_error in ("raise", "skip"):
        with pytest.raises(DataError, match="empty.jsonl: empty file"):
            read_ranklists(path, on_error=on_error)


def test_drop_duplicate_ranklists_ignores_order_within_a_tier():
    a = RankList(id="1", prompt="", tiers=[["x", "y"], ["z"]])
    same = RankList(id="2", prompt="", tiers=[["y", "x"], ["z"]])
    reranked = RankList(id="3", prompt="", tiers=[["z"], ["x", "y"]])
    other_prompt = RankList(id="4", prompt="p", tiers=[["x", "y"], ["z"]])
    kept, dropped = drop_duplicate_ranklists([a, same, reranked, other_prompt])
    assert [rl.id for rl in kept] == ["1", "3", "4"] and dropped == 1
