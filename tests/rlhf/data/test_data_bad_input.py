"""Every bad-input reason, in raise mode (DataError naming file, line, reason) and skip mode (counted)."""
import pytest

from rlhf.data.errors import REJECT_REASONS, DataError, RejectCounter
from rlhf.data.ranklist import read_published_tsv, read_ranklists
from rlhf.data.readers import read_labelled

GOOD_A = b'{"id": "a", "tiers": [["\xe5\xa5\xbd"], ["\xe5\xb7\xae"]]}'  # 好 / 差
GOOD_C = '{"id": "c", "tiers": [["棒"], ["烂"]]}'.encode()


def ranklist_file(bad: bytes) -> bytes:
    return GOOD_A + b"\n" + bad + b"\n" + GOOD_C + b"\n"


def labelled_jsonl(bad: str) -> bytes:
    return ('{"text": "很好", "label": 1}\n' + bad + '\n{"text": "很差", "label": "0"}\n').encode()


# (reason, file name, content, reader, bad line number, fragment of the message)
CASES = [
    ("undecodable", "r.jsonl", ranklist_file(b'{"tiers": [["\xff\xfe"], ["b"]]}'), "ranklists", 2, "not UTF-8"),
    ("undecodable", "t.csv", "text,label\n好,1\n".encode() + b"\xc3\x28,0\n" + "差,0\n".encode(), "labelled", 3,
     "not UTF-8"),
    ("invalid_json", "r.jsonl", ranklist_file(b'{"tiers": [["a"], ["b"]]'), "ranklists", 2, "invalid JSON"),
    ("invalid_json", "t.jsonl", labelled_jsonl("{text: 1}"), "labelled", 2, "invalid JSON"),
    ("missing_field", "r.jsonl", ranklist_file(b'{"id": "b", "prompt": ""}'), "ranklists", 2, "missing field 'tiers'"),
    ("missing_field", "t.jsonl", labelled_jsonl('{"text": "一般"}'), "labelled", 2, "missing field 'label'"),
    ("missing_field", "t.csv", "text,label\n好,1\n一般,\n差,0\n".encode(), "labelled", 3, "missing field 'label'"),
    ("invalid_field", "r.jsonl", ranklist_file(b'{"id": "b", "tiers": "a b"}'), "ranklists", 2,
     "list of lists of strings"),
    ("invalid_field", "t.jsonl", labelled_jsonl('["一般", 1]'), "labelled", 2, "expected a JSON object"),
    ("empty_text", "r.jsonl", ranklist_file(b'{"id": "b", "tiers": [[" \\t "], ["b"]]}'), "ranklists", 2,
     "empty text"),
    ("empty_text", "t.jsonl", labelled_jsonl('{"text": "\\n", "label": 1}'), "labelled", 2, "empty text"),
    ("empty_text", "p.tsv", "好\t差\n好\t\t差\n棒\t烂\n".encode(), "published", 2, "empty text"),
    ("over_max_chars", "r.jsonl", ranklist_file('{"id": "b", "tiers": [["好好好好好好"], ["b"]]}'.encode()),
     "ranklists", 2, "6 characters, over max_chars=5"),
    ("over_max_chars", "t.jsonl", labelled_jsonl('{"text": "一二三四五六", "label": 1}'), "labelled", 2,
     "over max_chars=5"),
    ("invalid_label", "t.jsonl", labelled_jsonl('{"text": "一般", "label": 2}'), "labelled", 2,
     "label must be 0 or 1, got 2"),
    ("invalid_label", "t.csv", "text,label\n好,1\n一般,pos\n差,0\n".encode(), "labelled", 3,
     "label must be 0 or 1, got 'pos'"),
    ("invalid_label", "t.jsonl", labelled_jsonl('{"text": "一般", "label": true}'), "labelled", 2,
     "got True"),
    ("single_text", "r.jsonl", ranklist_file(b'{"id": "b", "tiers": [["a"]]}'), "ranklists", 2,
     "at least two texts, got 1"),
    ("single_text", "p.tsv", "好\t差\n一般\n棒\t烂\n".encode(), "published", 2, "at least two texts"),
    ("empty_tier", "r.jsonl", ranklist_file(b'{"id": "b", "tiers": [["a"], [], ["b"]]}'), "ranklists", 2,
     "tier 1 is empty"),
    ("single_tier", "r.jsonl", ranklist_file(b'{"id": "b", "tiers": [["a", "b"]]}'), "ranklists", 2,
     "nothing to compare"),
    ("duplicate_text", "r.jsonl", ranklist_file('{"id": "b", "tiers": [["好"], ["好 "]]}'.encode()), "ranklists", 2,
     "duplicate text within a list: '好'"),
    ("duplicate_text", "p.tsv", "好\t差\n还行\t一般\t还行\n棒\t烂\n".encode(), "published", 2,
     "duplicate text within a list: '还行'"),
    ("duplicate_id", "r.jsonl", ranklist_file(b'{"id": "a", "tiers": [["x"], ["y"]]}'), "ranklists", 2,
     "duplicate rank-list id 'a'"),
]
IDS = [f"{reason}-{name}" for reason, name, *_ in CASES]


def read(kind, path, counter):
    if kind == "ranklists":
        return read_ranklists(path, counter=counter, max_chars=5)
    if kind == "published":
        return read_published_tsv(path, counter=counter, max_chars=5)
    return read_labelled(path, counter, max_chars=5)


def test_every_reason_has_a_case():
    assert {case[0] for case in CASES} == set(REJECT_REASONS)


@pytest.mark.parametrize("reason,name,content,kind,line,fragment", CASES, ids=IDS)
def test_raise_mode_names_file_line_and_reason(tmp_path, reason, name, content, kind, line, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read(kind, path, RejectCounter("raise"))
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message
    assert (info.value.reason, info.value.line) == (reason, line)


@pytest.mark.parametrize("reason,name,content,kind,line,fragment", CASES, ids=IDS)
def test_skip_mode_counts_the_reason_and_keeps_the_rest(tmp_path, reason, name, content, kind, line, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    counter = RejectCounter("skip")
    records = read(kind, path, counter)
    assert len(records) == 2  # the good lines around the bad one
    assert counter.counts == {r: int(r == reason) for r in REJECT_REASONS}


@pytest.mark.parametrize("on_error", ["raise", "skip"])
@pytest.mark.parametrize("content", [b"", b"\n\n", b" \r\n", b"\xef\xbb\xbf\n"],
                         ids=["zero", "newlines", "crlf", "bom"])
def test_empty_file_is_always_an_error(tmp_path, on_error, content):
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match="e.csv: empty file: no records to read"):
        read_labelled(path, RejectCounter(on_error))


def test_a_csv_without_the_configured_columns_is_an_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("review,stars\n好,5\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t.csv:1: no column 'text' in the header \['review', 'stars'\]"):
        read_labelled(path, RejectCounter("skip"))
