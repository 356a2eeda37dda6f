"""MLFLOW_TRACKING_URI pointing at an MLflow tracking server: stage runs, the registry and `rlhf compare` unchanged."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.smoke.ops_helpers import clean_env, mlflow_server

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def tiny_gpt2(path: Path, seed: int) -> Path:
    """A random 1-layer GPT-2 and a char tokenizer, saved with save_pretrained."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from rlhf.tokenizer import build_char_tokenizer

    tok = build_char_tokenizer(["这部电影很好看，推荐", "刚收到货，感觉很差"], vocab_size=64)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=16, n_layer=1, n_head=2,
                                       bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                                       pad_token_id=tok.pad_token_id))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture
def server_env(tmp_path, monkeypatch):
    """An MLflow tracking server; this process's MLflow client pointed at it for the test only."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved = dict(os.environ)
    project = tmp_path / "project"
    project.mkdir()
    with mlflow_server(tmp_path / "server") as url:
        monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
        monkeypatch.setattr(registry_utils, "_registry_uri", None)
        for var in ("MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "RLHF_MLFLOW_PARENT_RUN_ID",
                    "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "DVC_STAGE"):
            os.environ.pop(var, None)
        os.environ.update(MLFLOW_TRACKING_URI=url, RLHF_PROJECT_ROOT=str(project))
        try:
            yield url, project, tmp_path / "server"
        finally:
            os.environ.clear()
            os.environ.update(saved)


def test_tracking_server_stage_runs_registry_and_compare(server_env, tmp_path):
    import mlflow

    from rlhf_ops import registry, tracking

    url, project, server_root = server_env
    versions = []
    for seed, lr in ((0, 3e-5), (1, 1e-4)):
        model_dir = tiny_gpt2(tmp_path / f"policy-{seed}", seed)
        with tracking.stage_run("ppo", params={"seed": seed, "ppo": {"lr": lr, "iterations": 3}}) as run_id:
            tracking.log_metrics({"final_score": 0.5 + seed, "objective": {"kl": 0.1}})
            version, new = registry.register_model_dir(model_dir, registry.POLICY)
        assert new and version.run_id == run_id
        registry.set_version_tags(registry.POLICY, version.version, {
            "rlhf.eval.judge_score": 0.6 + 0.1 * seed, "rlhf.eval.kl": 1.0, "rlhf.eval.distinct_2": 0.9})
        versions.append(version.version)
    registry.promote(registry.POLICY, versions[0], reason="first version")

    run = mlflow.get_run(run_id)
    assert run.data.params["ppo.lr"] == "0.0001" and run.data.metrics["objective.kl"] == 0.1
    assert run.data.tags["rlhf.stage"] == "ppo" and run.data.tags["torch.version"]
    assert registry.by_alias(registry.POLICY, registry.CHAMPION).version == versions[0]
    assert registry.by_alias(registry.POLICY, registry.CHALLENGER).version == versions[1]
    # Artifacts went through the server into its artifact store, and come back as save_pretrained files.
    assert list((server_root / "artifacts").rglob("model.safetensors"))
    local = registry.download(registry.by_alias(registry.POLICY, registry.CHAMPION), tmp_path / "champion")
    assert (local / "config.json").is_file() and (local / "tokenizer.json").is_file()

    # A fresh `rlhf` process that only knows MLFLOW_TRACKING_URI reads it all back.
    proc = subprocess.run([sys.executable, "-m", "rlhf_cli.main", "compare", "policy", "--json"], cwd=project,
                          env=clean_env(MLFLOW_TRACKING_URI=url, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    assert data["champion"] == versions[0]
    newest, oldest = data["versions"]
    assert newest["version"] == versions[1] and newest["aliases"] == ["challenger"]
    assert oldest["aliases"] == ["champion"]
    assert newest["params_diff"] == {"ppo.lr": {"value": "0.0001", "champion": "3e-05"},
                                     "seed": {"value": "1", "champion": "0"}}
    # the yardstick figures are tags evaluate_samples writes; these hand-registered versions have none
    assert newest["metrics"] == {"judge_score": pytest.approx(0.7), "kl": 1.0, "distinct_2": 0.9,
                                 "yardstick.tuned.perplexity": None, "yardstick.tuned.ratio": None}
    assert newest["run_id"] == run_id
