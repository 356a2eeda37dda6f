"""An empty MLflow SQLite store per test, for the registry and comparison tests (no models, no pipeline run)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory) -> Path:
    """An initialised, empty MLflow SQLite database (its schema migrations run once, not per test)."""
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(f"sqlite:///{path}", (path.parent / "art").as_uri())
    return path


@pytest.fixture
def store(tmp_path, monkeypatch, empty_db):
    """An empty SQLite MLflow store in tmp, used by this process and by in-process `rlhf` calls.

    Yields ``(MlflowClient, experiment id)``. The environment is saved and restored whole: an
    in-process ``rlhf`` call sets the project's defaults (``setup_environment``) for the process.
    """
    from mlflow import MlflowClient

    saved = dict(os.environ)
    shutil.copy(empty_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    for var in ("MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        os.environ.pop(var, None)
    os.environ.update(MLFLOW_TRACKING_URI=uri, RLHF_PROJECT_ROOT=str(tmp_path), PREFECT_HOME=str(tmp_path / ".prefect"),
                      COLUMNS="250")  # rich's width when not a terminal
    monkeypatch.chdir(tmp_path)
    client = MlflowClient()
    exp = client.create_experiment("rlhf-pipeline", artifact_location=(tmp_path / "mlartifacts").as_uri())
    yield client, exp
    os.environ.clear()
    os.environ.update(saved)
