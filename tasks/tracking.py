"""The one module that talks to MLflow (stages and flows go through it, nothing else imports mlflow).

One store per project: ``MLFLOW_TRACKING_URI`` (default ``sqlite:///<root>/mlflow.db``, set by
:func:`tasks.environment.setup_environment`), artifacts under ``<root>/mlartifacts`` for a local
store. The flow opens a parent run; a stage process nests its run under it when
``RLHF_MLFLOW_PARENT_RUN_ID`` is set (``dvc repro`` alone gives top-level stage runs).
"""
from __future__ import annotations

import contextlib
import math
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator, Mapping

import mlflow
from mlflow.tracking import MlflowClient

from rlhf.config import flatten

EXPERIMENT_DEFAULT = "rlhf-pipeline"
PARENT_ENV = "RLHF_MLFLOW_PARENT_RUN_ID"


def _project_root() -> Path:
    return Path(os.environ.get("RLHF_PROJECT_ROOT", os.getcwd()))


def _is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def experiment_id() -> str:
    """Create (once) and activate the project's experiment; returns its id."""
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT_DEFAULT)
    uri = mlflow.get_tracking_uri()
    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is None:
        store_root = Path(os.environ.get("DVC_ROOT") or _project_root())
        location = (store_root / "mlartifacts").as_uri() if _is_local_store(uri) else None
        try:
            exp_id = client.create_experiment(name, artifact_location=location)
        except mlflow.exceptions.MlflowException:  # created meanwhile by another process
            exp_id = client.get_experiment_by_name(name).experiment_id
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def git_tags(root: Path | None = None) -> dict[str, str]:
    """Git commit and dirty flag of the project (empty when not a git checkout)."""
    root = root or _project_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"mlflow.source.git.commit": commit, "git.commit": commit, "git.dirty": str(bool(dirty)).lower()}


def environment_tags() -> dict[str, str]:
    """Library versions and the DVC experiment (when run by ``dvc exp run``)."""
    import torch
    import transformers

    tags = {"torch.version": torch.__version__, "transformers.version": transformers.__version__}
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.exp_baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return tags


# --- data lineage tags (issue 6) -------------------------------------------------------------
def data_tags(stage: str, root: Path | None = None) -> dict[str, str]:
    """The DVC stage and the md5 of each of its ``dvc.yaml`` deps, as ``dvc.lock`` records them.

    Tags: ``dvc.stage``; ``dvc.dep.<path>`` per dep; ``rlhf.data_hash`` over the data and model
    deps and ``rlhf.code_hash`` over the code deps (:func:`tasks.lineage.combined_hash`).
    """
    from tasks import lineage

    root = root or _project_root()
    deps = lineage.hashes(root, lineage.stage_deps(root, stage))
    data = {p: h for p, h in deps.items() if not lineage.is_code(root, p)}
    code = {p: h for p, h in deps.items() if lineage.is_code(root, p)}
    tags = {"dvc.stage": os.environ.get("DVC_STAGE") or stage, **{f"dvc.dep.{p}": h for p, h in deps.items()}}
    if data:
        tags["rlhf.data_hash"] = lineage.combined_hash(data)
    if code:
        tags["rlhf.code_hash"] = lineage.combined_hash(code)
    return tags


def out_tags(stage: str, root: Path | None = None) -> dict[str, str]:
    """``dvc.out.<path>`` = md5 of each of ``stage``'s outs (what a later stage's ``dvc.dep.*`` matches)."""
    from tasks import lineage

    root = root or _project_root()
    return {f"dvc.out.{p}": h for p, h in lineage.hashes(root, lineage.stage_outs(root, stage)).items()}


def stage_params(stage: str, root: Path | None = None) -> dict[str, Any]:
    """The ``params.yaml`` values ``stage`` depends on (per ``dvc.yaml``), as a nested dict."""
    import yaml

    from tasks import lineage

    root = root or _project_root()
    path = root / "params.yaml"
    values = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}
    out: dict[str, Any] = {}
    for key in lineage.stage_param_keys(root, stage):
        node: Any = values
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        out[key] = node
    return out
# --- end of data lineage tags ----------------------------------------------------------------


@contextlib.contextmanager
def pipeline_run(run_name: str = "pipeline", tags: Mapping[str, str] | None = None) -> Iterator[str]:
    """The flow's parent run; yields its id and exports it to stage processes."""
    experiment_id()
    all_tags = {**git_tags(), **environment_tags(), "rlhf.kind": "pipeline", **(tags or {})}
    with mlflow.start_run(run_name=run_name, tags=all_tags) as run:
        os.environ[PARENT_ENV] = run.info.run_id
        try:
            yield run.info.run_id
        finally:
            os.environ.pop(PARENT_ENV, None)


@contextlib.contextmanager
def stage_run(stage: str, params: Mapping[str, Any] | None = None,
              tags: Mapping[str, str] | None = None) -> Iterator[str]:
    """A stage's run, nested under the flow's parent run when there is one; yields the run id."""
    experiment_id()
    parent = os.environ.get(PARENT_ENV) or None
    all_tags = {**git_tags(), **environment_tags(), **data_tags(stage), "rlhf.stage": stage, "rlhf.kind": "stage",
                **(tags or {})}
    with mlflow.start_run(run_name=stage, parent_run_id=parent, tags=all_tags) as run:
        if params:
            log_params(params)
        yield run.info.run_id
        set_tags(out_tags(stage))  # what the stage wrote: later stages' dvc.dep.* tags point back here


def log_params(params: Mapping[str, Any]) -> None:
    """Log nested params flattened to dotted keys (values longer than MLflow's limit are cut)."""
    flat = {k: ("null" if v is None else str(v))[:6000] for k, v in flatten(params).items()}
    items = list(flat.items())
    for i in range(0, len(items), 100):
        mlflow.log_params(dict(items[i:i + 100]))


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log the numeric leaves of a (nested) metrics dict; non-finite values are skipped."""
    flat = {}
    for k, v in flatten(metrics).items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(v):
            flat[k] = float(v)
    if flat:
        mlflow.log_metrics(flat, step=step)


def set_tags(tags: Mapping[str, Any]) -> None:
    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Log a file or a whole directory."""
    path = Path(path)
    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path=artifact_path)
    elif path.exists():
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


class StepLogger:
    """Buffer per-step metrics and write them in batches (SQLite writes are slow one by one)."""

    def __init__(self, every: int = 10, flush_at: int = 200):
        self.every, self.flush_at = max(every, 1), flush_at
        self._buffer: list[Any] = []

    def __call__(self, step: int, metrics: Mapping[str, Any]) -> None:
        if step % self.every:
            return
        from mlflow.entities import Metric
        import time

        ts = int(time.time() * 1000)
        for k, v in flatten(metrics).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                self._buffer.append(Metric(k, float(v), ts, step))
        if len(self._buffer) >= self.flush_at:
            self.flush()

    def flush(self) -> None:
        run = mlflow.active_run()
        if run is not None and self._buffer:
            MlflowClient().log_batch(run.info.run_id, metrics=self._buffer)
        self._buffer = []


def find_runs(filter_string: str = "", max_results: int = 100) -> list:
    """Runs of the project's experiment matching an MLflow filter, newest first."""
    exp = experiment_id()
    return MlflowClient().search_runs([exp], filter_string=filter_string, max_results=max_results,
                                      order_by=["attributes.start_time DESC"])


def record_skipped_stage(stage: str, metrics: Mapping[str, Any]) -> str:
    """A finished nested run for a stage DVC found up to date: its current metrics, status ``skipped``.

    Uses the client API (not the fluent active-run stack), so it is safe inside the flow's run.
    """
    from mlflow.entities import Metric, Param
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
    import time

    client = MlflowClient()
    tags = {**git_tags(), **environment_tags(), **data_tags(stage), **out_tags(stage), "rlhf.stage": stage,
            "rlhf.kind": "stage", "rlhf.status": "skipped", MLFLOW_RUN_NAME: stage}
    parent = os.environ.get(PARENT_ENV)
    if parent:
        tags[MLFLOW_PARENT_RUN_ID] = parent
    run = client.create_run(experiment_id(), tags=tags, run_name=stage)
    ts = int(time.time() * 1000)
    batch = [Metric(k, float(v), ts, 0) for k, v in flatten(metrics).items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    for i in range(0, len(batch), 500):
        client.log_batch(run.info.run_id, metrics=batch[i:i + 500])
    params = [Param(k, ("null" if v is None else str(v))[:6000]) for k, v in flatten(stage_params(stage)).items()]
    for i in range(0, len(params), 100):
        client.log_batch(run.info.run_id, params=params[i:i + 100])
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def log_table(data: Mapping[str, list], artifact_file: str) -> None:
    """A small table (columns of equal length) shown in the MLflow UI's artifact viewer."""
    mlflow.log_table(data=dict(data), artifact_file=artifact_file)
