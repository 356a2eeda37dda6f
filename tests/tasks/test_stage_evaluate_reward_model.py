"""The evaluate_reward_model stage's metrics carry the linear baseline and the robustness set (small data).

The stage runs whole on a tiny reward model; only the MLflow registry and artifact calls are stubbed.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rlhf.params import Params
from rlhf.reward.robustness import PERTURBATIONS
from tasks import evaluate_reward_model as stage
from tests.faults.conftest import save_tiny_models
from tests.rlhf.reward.test_rm_baseline import NEGATIVE, POSITIVE, TEST_LISTS


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    from rlhf_ops import registry, tracking

    models = save_tiny_models(tmp_path / "tiny", texts=POSITIVE + NEGATIVE + ["这次"], n_positions=64)
    (tmp_path / "models").mkdir()
    models["reward_model"].rename(tmp_path / stage.MODEL_DIR)
    _write_jsonl(tmp_path / "data/prepared/splits/train.jsonl",
                 [{"text": t, "label": 1} for t in POSITIVE] + [{"text": t, "label": 0} for t in NEGATIVE])
    _write_jsonl(tmp_path / stage.TEST_LISTS, TEST_LISTS)

    class Version:
        version = "1"

    monkeypatch.setattr(registry, "register_model_dir", lambda *a, **k: (Version(), True))
    monkeypatch.setattr(stage, "champion_gate", lambda *a, **k: {"promoted": True, "decision": "stub"})
    monkeypatch.setattr(tracking, "log_artifact", lambda *a, **k: None)
    monkeypatch.setattr(tracking, "set_tags", lambda *a, **k: None)
    return tmp_path


def test_stage_metrics_hold_the_baseline_next_to_the_model(project: Path):
    metrics = stage.run(Params(), project)
    json.dumps(metrics)  # what stage_main writes to metrics/evaluate_reward_model.json
    base = metrics["baseline"]
    assert base["kind"] == "tfidf_logreg" and base["n_train_texts"] == 20
    assert base["n_lists"] == metrics["n_lists"] == 3 and base["n_pairs"] == metrics["n_pairs"] == 4
    assert base["pairwise_accuracy"] == 1.0 and base["exact_order_accuracy"] == 1.0  # the sentiment is in the n-grams
    for key in ("pairwise_accuracy", "exact_order_accuracy", "kendall_tau_b"):
        assert metrics["vs_baseline"][key] == pytest.approx(metrics[key] - base[key], abs=1e-4)
    assert set(metrics["robustness"]) == set(PERTURBATIONS)
    for name, entry in metrics["robustness"].items():
        assert set(entry["model"]) == set(entry["baseline"]) == {"pairwise_accuracy", "exact_order_accuracy",
                                                                 "kendall_tau_b"}, name
    with (project / stage.REPORT_DIR / "robustness.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["perturbation"] for r in rows] == ["original", *PERTURBATIONS]
    assert float(rows[0]["baseline_pairwise_accuracy"]) == 1.0
    assert float(rows[0]["model_pairwise_accuracy"]) == pytest.approx(metrics["pairwise_accuracy"], abs=1e-5)


def test_stage_fits_a_pairwise_ranker_on_human_lists(project: Path):
    # Rank-list input: no labelled texts, only (human) lists in the train split.
    (project / "data/prepared/splits/train.jsonl").write_text("", encoding="utf-8")
    from tests.rlhf.reward.test_rm_baseline import train_lists

    _write_jsonl(project / "data/prepared/ranklists/train.jsonl", train_lists())
    metrics = stage.run(Params(), project)
    assert metrics["baseline"]["kind"] == "pairwise_ranker" and metrics["baseline"]["n_train_pairs"] == 80
    assert metrics["baseline"]["pairwise_accuracy"] == 1.0


def test_stage_without_a_train_split_says_what_to_run(project: Path):
    (project / "data/prepared/splits/train.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="run the prepare stage"):
        stage.run(Params(), project)
