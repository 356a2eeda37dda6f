"""The one module that talks to MLflow (stages, flows, registry and comparisons go through it).

Nothing else imports ``mlflow`` (``tests/rlhf_ops/test_ops_tracking_only.py`` checks it); the
registry's rules (champion/challenger, promotion) live in :mod:`rlhf_ops.registry`, the MLflow calls
they need here. Run and model-version objects returned here are MLflow's entities, read by attribute.

One store per project: ``MLFLOW_TRACKING_URI`` (default ``sqlite:///<root>/mlflow.db``, set by
:func:`rlhf_ops.environment.setup_environment`), artifacts under ``<root>/mlartifacts`` for a local
store. The flow opens a parent run; a stage process nests its run under it when
``RLHF_MLFLOW_PARENT_RUN_ID`` is set (``dvc repro`` alone gives top-level stage runs).
"""
from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
import time
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
    deps and ``rlhf.code_hash`` over the code deps (:func:`rlhf_ops.lineage.combined_hash`).
    """
    from rlhf_ops import lineage

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
    from rlhf_ops import lineage

    root = root or _project_root()
    return {f"dvc.out.{p}": h for p, h in lineage.hashes(root, lineage.stage_outs(root, stage)).items()}


def stage_params(stage: str, root: Path | None = None) -> dict[str, Any]:
    """The ``params.yaml`` values ``stage`` depends on (per ``dvc.yaml``), as a nested dict."""
    import yaml

    from rlhf.config import ParamsLoader
    from rlhf_ops import lineage

    root = root or _project_root()
    path = root / "params.yaml"
    values = (yaml.load(path.read_text(encoding="utf-8"), Loader=ParamsLoader) or {}) if path.is_file() else {}
    out: dict[str, Any] = {}
    for key in lineage.stage_param_keys(root, stage):
        node: Any = values
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        out[key] = node
    return out
# --- end of data lineage tags ----------------------------------------------------------------


# --- runs left RUNNING by a killed process (issue 18) --------------------------------------------
PID_TAG, HOST_TAG, ENDED_BY_TAG = "rlhf.pid", "rlhf.host", "rlhf.ended_by"
ENDED_BY = "next run found its process gone"


def process_tags() -> dict[str, str]:
    """The process and host a run belongs to: a later run can tell whether it is still alive."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _process_started(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds) per ``/proc``; ``None`` where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])  # field 22, starttime, in clock ticks after boot
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def process_gone(pid: int, run_started: float | None = None) -> bool:
    """Whether the process that started a run is gone: no such pid, or the pid now names another program.

    Another program: not a Python process (a zombie has no command line), or, where ``/proc`` tells,
    one started after the run (``run_started``, epoch seconds): the pid was reused.
    """
    if pid <= 0:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    except OSError:
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return False  # no /proc (not Linux): alive is all we can tell
    try:
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        exe = ""
    if "python" not in os.path.basename(argv0) and "python" not in exe:
        return True
    started = _process_started(pid)
    return run_started is not None and started is not None and started > run_started + 2.0


def close_orphaned_runs() -> list[str]:
    """Mark ``KILLED`` the project's runs left ``RUNNING`` by a process that is gone; their ids.

    Only runs tagged with this host and a pid (:func:`process_tags`) are judged: a run of another
    machine, or one from before these tags, is left as it is. Each closed run gets the tag
    ``rlhf.ended_by``. Called when a pipeline or a stage starts; never fails the run that calls it.
    """
    host = socket.gethostname().replace("\\", "\\\\").replace("'", "\\'")
    client = MlflowClient()
    closed = []
    try:
        runs = client.search_runs([experiment_id()], max_results=1000,
                                  filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'")
        for run in runs:
            try:
                pid = int(run.data.tags.get(PID_TAG, ""))
            except ValueError:
                continue
            if process_gone(pid, run.info.start_time / 1000 if run.info.start_time else None):
                client.set_tag(run.info.run_id, ENDED_BY_TAG, ENDED_BY)
                client.set_terminated(run.info.run_id, status="KILLED")
                closed.append(run.info.run_id)
    except mlflow.exceptions.MlflowException as e:
        print(f"note: could not check for runs left RUNNING by a killed process: {e}", file=sys.stderr)
    return closed


@contextlib.contextmanager
def pipeline_run(run_name: str = "pipeline", tags: Mapping[str, str] | None = None) -> Iterator[str]:
    """The flow's parent run; yields its id and exports it to stage processes.

    The flow calls :func:`close_orphaned_runs` first (and reports what it found in its summary).
    """
    experiment_id()
    all_tags = {**git_tags(), **environment_tags(), **process_tags(), "rlhf.kind": "pipeline", **(tags or {})}
    with mlflow.start_run(run_name=run_name, tags=all_tags) as run:
        os.environ[PARENT_ENV] = run.info.run_id
        try:
            yield run.info.run_id
        finally:
            os.environ.pop(PARENT_ENV, None)


@contextlib.contextmanager
def stage_run(stage: str, params: Mapping[str, Any] | None = None,
              tags: Mapping[str, str] | None = None) -> Iterator[str]:
    """A stage's run, nested under the flow's parent run when there is one; yields the run id.

    First marks ``KILLED`` the runs a killed process left ``RUNNING`` (:func:`close_orphaned_runs`).
    """
    experiment_id()
    closed = close_orphaned_runs()
    if closed:
        print(f"{stage}: marked {len(closed)} MLflow run(s) KILLED: left RUNNING by a process that is gone")
    parent = os.environ.get(PARENT_ENV) or None
    all_tags = {**git_tags(), **environment_tags(), **data_tags(stage), **process_tags(), "rlhf.stage": stage,
                "rlhf.kind": "stage", **(tags or {})}
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


def record_skipped_stage(stage: str, metrics: Mapping[str, Any]) -> str:
    """A finished nested run for a stage DVC found up to date: its current metrics, status ``skipped``.

    Uses the client API (not the fluent active-run stack), so it is safe inside the flow's run.
    """
    from mlflow.entities import Metric, Param
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    client = MlflowClient()
    tags = {**git_tags(), **environment_tags(), **data_tags(stage), **out_tags(stage), **process_tags(),
            "rlhf.stage": stage, "rlhf.kind": "stage", "rlhf.status": "skipped", MLFLOW_RUN_NAME: stage}
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


# --- queries: runs ------------------------------------------------------------------------------
def get_run(run_id: str | None):
    """The MLflow run ``run_id``; ``None`` when not given, deleted, or in a store this client cannot see."""
    if not run_id:
        return None
    try:
        return MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return None


def search_runs(experiment_ids: list[str], filter_string: str, *, max_results: int = 50) -> list:
    """Runs of ``experiment_ids`` matching an MLflow filter string, newest first."""
    return MlflowClient().search_runs(experiment_ids, filter_string=filter_string, max_results=max_results,
                                      order_by=["attributes.start_time DESC"])


# --- the model registry (what rlhf_ops.registry needs of MLflow) -------------------------------
def model_versions(name: str) -> list:
    """Every version of registered model ``name`` (without aliases); empty when there is no such model."""
    quoted = name.replace("\\", "\\\\").replace("'", "\\'")
    try:
        return MlflowClient().search_model_versions(f"name = '{quoted}'")
    except mlflow.exceptions.MlflowException:
        return []


def model_version(name: str, version: str):
    """One version of ``name``, aliases filled in (``MlflowException`` when there is none)."""
    return MlflowClient().get_model_version(name, str(version))


def model_version_by_alias(name: str, alias: str):
    """The version of ``name`` holding ``alias``, or ``None``."""
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None


def model_aliases(name: str) -> dict[str, str]:
    """``{alias: version}`` of registered model ``name``; empty when there is no such model."""
    try:
        aliases = MlflowClient().get_registered_model(name).aliases or {}
    except mlflow.exceptions.MlflowException:
        return {}
    return {alias: str(version) for alias, version in aliases.items()}


def set_model_alias(name: str, alias: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, str(version))


def delete_model_alias(name: str, alias: str) -> None:
    MlflowClient().delete_registered_model_alias(name, alias)


def set_model_version_tags(name: str, version: str, tags: Mapping[str, Any]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


def log_transformers_model(model, tokenizer, artifact_name: str, task: str, pip_requirements: list[str]) -> str:
    """Log a transformers model and its tokenizer in the active run (MLflow's transformers flavour); its URI."""
    info = mlflow.transformers.log_model(transformers_model={"model": model, "tokenizer": tokenizer},
                                         name=artifact_name, task=task, pip_requirements=pip_requirements)
    return info.model_uri


def register_model(model_uri: str, name: str, tags: Mapping[str, Any]) -> str:
    """Register ``model_uri`` as a new version of ``name`` with ``tags``; returns the version number."""
    mv = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()})
    return str(mv.version)


def download_artifacts(uri: str) -> Path:
    """Local copy of the artifacts at ``uri`` (a model version's ``source``)."""
    return Path(mlflow.artifacts.download_artifacts(uri))
