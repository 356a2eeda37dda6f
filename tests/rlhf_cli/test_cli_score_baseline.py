"""``rlhf score --file LISTS --baseline``: the linear baseline's row next to the reward model's."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults.conftest import save_tiny_models
from tests.rlhf.reward.test_rm_baseline import NEGATIVE, POSITIVE, TEST_LISTS


@pytest.fixture
def rlhf(rlhf_in_tmp, monkeypatch):
    """``rlhf(*argv) -> (exit status, stdout, stderr)`` in an empty project directory (tests/conftest.py)."""
    monkeypatch.setenv("COLUMNS", "200")
    return rlhf_in_tmp


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    models = save_tiny_models(tmp_path / "tiny", texts=POSITIVE + NEGATIVE + ["这次"], n_positions=64)
    lists = tmp_path / "my_lists.jsonl"
    lists.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in TEST_LISTS), encoding="utf-8")
    return {"model": models["reward_model"], "lists": lists}


def _write_train_split(root: Path) -> None:
    path = root / "data" / "prepared" / "splits" / "train.jsonl"
    path.parent.mkdir(parents=True)
    records = [{"text": t, "label": 1} for t in POSITIVE] + [{"text": t, "label": 0} for t in NEGATIVE]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def test_score_file_baseline_prints_both_rows(rlhf, files, tmp_path):
    _write_train_split(tmp_path)
    code, out, err = rlhf("score", "--model", str(files["model"]), "--file", str(files["lists"]), "--baseline")
    assert code == 0, err
    assert "my_lists.jsonl" in out
    model_row = next(line for line in out.splitlines() if "reward model" in line and "0." in line)
    baseline_row = next(line for line in out.splitlines() if "baseline: tfidf_logreg" in line)
    assert "1.0000" in baseline_row  # the sentiment is in the character n-grams: every pair right
    assert " 3 " in model_row and " 4 " in model_row  # lists, pairs

    code, out, _ = rlhf("score", "--model", str(files["model"]), "--file", str(files["lists"]))
    assert code == 0 and "baseline:" not in out  # only when asked


def test_score_baseline_without_a_prepared_train_split_is_one_clear_line(rlhf, files):
    code, _, err = rlhf("score", "--model", str(files["model"]), "--file", str(files["lists"]), "--baseline")
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Loading weights")]
    assert len(lines) == 1 and lines[0].startswith("error: score: no train split in")
    assert "run the prepare stage" in lines[0]


def test_score_baseline_needs_a_file(rlhf, files):
    code, _, err = rlhf("score", "--model", str(files["model"]), "--baseline", "好")
    assert code == 2 and "--baseline needs --file" in err
