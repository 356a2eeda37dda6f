"""Issue 18, case 8: a typo in ``params.yaml`` is refused before anything runs.

An unknown *top-level* key (``ppoo:`` for ``ppo:``) changes no stage's DVC params, so every stage
was "up to date" and ``rlhf run`` finished without a word: the typo was silently ignored.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from rlhf.config import ConfigError
from rlhf.params import default_params_yaml, load_params
from rlhf_cli import main as cli
from tests.faults.conftest import forbid_flow

REPO = Path(__file__).resolve().parents[2]


def test_load_params_names_an_unknown_top_level_key(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 0\nppoo:\n  lr: 1.0e-5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_params(path)
    message = str(e.value)
    assert "ppoo" in message and "top-level" in message
    for accepted in ("seed", "data", "base", "reward_model", "ppo", "eval"):
        assert accepted in message


def test_the_shipped_params_files_still_load(tmp_path):
    load_params(REPO / "tests" / "smoke" / "params.yaml")
    load_params(REPO / "params.yaml")
    (tmp_path / "params.yaml").write_text(default_params_yaml(), encoding="utf-8")
    load_params(tmp_path / "params.yaml")


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "setup_environment", lambda *a, **k: tmp_path)
    forbid_flow(monkeypatch, "the flow ran despite a bad params.yaml")
    return tmp_path


@pytest.mark.parametrize("text, expected", [
    ("seed: 0\nppoo:\n  lr: 1.0e-5\n", "unknown top-level key ppoo"),
    ("seed: 0\nppo:\n  lr: -1.0e-5\n", "ppo.lr"),
    ("seed: [\n", "invalid YAML"),
])
def test_rlhf_run_refuses_a_bad_params_file_before_the_flow(project, capsys, text, expected):
    (project / "params.yaml").write_text(text, encoding="utf-8")
    assert cli.main(["run"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.strip()]
    assert line.startswith("error: params.yaml") and expected in line, err
