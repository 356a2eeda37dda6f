"""Issue 18, case 8: a bad first line of a JSON-lines corpus is one bad line, not an unknown format.

Format detection used to read only the first line: when it was not JSON, ``prepare`` said
"cannot tell the format" even with ``data.on_error: skip``. The extension says JSON lines; the
first record that parses says which kind; the bad line is then skipped and counted (or, in raise
mode, reported with its line number like any other bad line).
"""
from __future__ import annotations

import json

import pytest

from rlhf.config import from_dict
from rlhf.data.config import DataConfig
from rlhf.data.errors import DataError
from rlhf.data.prepare import prepare_data
from rlhf.data.readers import detect_format

SMALL = {"max_lists": {"train": None, "dev": None, "test": None}, "prompts_per_split": {"train": 5, "test": 3},
         "min_chars": 3, "clean_max_chars": 40}


def labelled_rows(n=60) -> list[str]:
    rows = [{"text": f"这家店第{i}次买，质量很好，物流也快", "label": 1} for i in range(n)]
    rows += [{"text": f"第{i}次买到坏的，客服也不理人", "label": 0} for i in range(n)]
    return [json.dumps(r, ensure_ascii=False) for r in rows]


def ranklist_rows(n=60) -> list[str]:
    return [json.dumps({"tiers": [[f"第{i}次，很好，推荐"], [f"第{i}次，太差了"]]}, ensure_ascii=False) for i in range(n)]


def config(**overrides) -> DataConfig:
    return from_dict(DataConfig, {"source": "reviews.jsonl", **SMALL, **overrides}, prefix="data")


@pytest.mark.parametrize("rows, expected", [(labelled_rows, "labelled"), (ranklist_rows, "ranklists")])
@pytest.mark.parametrize("first", ['{"text": "坏的开头", "label": 1', "not json at all", "[1, 2]", '"a string"'])
def test_a_bad_first_line_does_not_hide_the_format(tmp_path, rows, expected, first):
    path = tmp_path / "reviews.jsonl"
    path.write_text("\n".join([first, *rows()]) + "\n", encoding="utf-8")
    assert detect_format(path) == expected


def test_skip_mode_skips_and_counts_the_bad_first_line(tmp_path):
    (tmp_path / "reviews.jsonl").write_text("\n".join(['{"text": "坏', *labelled_rows()]) + "\n", encoding="utf-8")
    metrics = prepare_data(config(on_error="skip"), tmp_path / "out", seed=0, project_root=tmp_path)
    assert metrics["rejected"]["invalid_json"] == 1 and sum(metrics["rejected"].values()) == 1


def test_raise_mode_names_the_bad_line(tmp_path):
    (tmp_path / "reviews.jsonl").write_text("\n".join(['{"text": "坏', *labelled_rows()]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"^reviews.jsonl:1: invalid JSON.*data.on_error: skip"):
        prepare_data(config(), tmp_path / "out", seed=0, project_root=tmp_path)


def test_no_usable_json_line_still_says_what_was_tried(tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_text("not json\nnor this\n", encoding="utf-8")
    with pytest.raises(DataError, match="cannot tell the format"):
        detect_format(path)


def test_labels_import_reads_a_jsonl_file_with_a_bad_first_line_as_rank_lists(tmp_path):
    from labeler.export import import_labels

    path = tmp_path / "lists.jsonl"
    path.write_text("\n".join(["not json", *ranklist_rows(3)]) + "\n", encoding="utf-8")
    result = import_labels(tmp_path / "labels.db", path)
    assert result.format == "ranklists" and result.imported == 3 and result.rejected == {"invalid_json": 1}
