"""The pipeline flow: every DVC stage as a Prefect task, one MLflow parent run, a run summary.

Each task runs ``dvc repro --single-item <stage>``, so DVC decides what is up to date
(``dvc.lock``); an unchanged stage is reported as skipped, not re-run. Stage processes nest their
MLflow runs under the flow's parent run (``RLHF_MLFLOW_PARENT_RUN_ID``).

Importing this module imports Prefect, which reads ``PREFECT_HOME`` and its other settings then:
a process calls :func:`rlhf_ops.environment.setup_environment` before importing it (``rlhf``'s
``main`` does). The flow calls it again when it starts, for flow runs a Prefect worker starts
(``setdefault``: nothing already set changes).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from flows import dvc
from flows.summary import render_markdown
from rlhf_ops import tracking
from rlhf_ops.environment import setup_environment


class StageFailed(RuntimeError):
    """A stage's command exited non-zero; the message says which stage and the error it printed."""


class _NoEmptyTraceback(logging.Filter):
    """Prefect logs a task that returned ``Failed`` with ``exc_info=True`` outside any exception,
    which prints ``NoneType: None`` under the message: drop the empty exception info."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is not None and not isinstance(record.exc_info, bool) and record.exc_info[0] is None:
            record.exc_info = None
        return True


logging.getLogger("prefect.task_runs").addFilter(_NoEmptyTraceback())


def failure_reason(tail: str) -> str:
    """The line of a failed stage's output that says why: its own ``error: ...`` line, else DVC's, else the last.

    The whole output has been streamed already; the run ends with this one line (no tracebacks).
    """
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    for prefix in ("error:", "ERROR:"):
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return found[-1][len(prefix):].strip() if prefix == "error:" else found[-1]
    return lines[-1] if lines else "no output"


@dataclass
class StageResult:
    stage: str
    status: str  # "ran" | "skipped" | "failed"
    seconds: float
    metrics: dict = field(default_factory=dict)
    changed: dict = field(default_factory=dict)


def _read_metrics(root: Path, stage: str) -> dict:
    """``metrics/<stage>.json``; for a foreach stage ``{item: metrics/<item>.json}`` (those that exist)."""
    items = dvc.stage_items(root, stage)
    if items is not None:
        return {item: m for item in items if (m := _read_metrics(root, item))}
    path = dvc.stage_metrics_file(root, stage)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


@task(name="stage", task_run_name="{stage}", cache_policy=NO_CACHE, persist_result=False)
def run_stage(stage: str, root: str, force: bool = False) -> StageResult | Failed:
    """Bring one DVC stage up to date; skipped (and logged as such) when DVC says it already is.

    A stage that fails returns a ``Failed`` state naming its error (Prefect retries it when asked):
    the stage printed its own message, a Prefect traceback would add nothing but noise.
    """
    logger = get_run_logger()
    root_path = Path(root)
    t0 = time.perf_counter()
    changed = {} if force else dvc.status(root_path, stage)
    if not changed and not force:
        metrics = _read_metrics(root_path, stage)
        items = dvc.stage_items(root_path, stage)
        if items is None:
            tracking.record_skipped_stage(stage, metrics)
        else:  # a foreach stage: one run per item, named as the item's own runs are (train_policy@grpo)
            for item in items:
                tracking.record_skipped_stage(f"{stage}@{item}", metrics.get(item, {}))
        logger.info("%s: up to date (dvc.lock), skipped", stage)
        return StageResult(stage, "skipped", round(time.perf_counter() - t0, 2), metrics)
    logger.info("%s: running (%s)", stage, "forced" if force else ", ".join(sorted(_reasons(changed))))
    code, tail = dvc.repro(root_path, stage, force=force)
    if code != 0:
        # DVC removed the stage's outputs before its command ran: put the previous ones back (all are cached).
        if dvc.checkout(root_path, stage):
            logger.info("%s: its previous outputs restored from the DVC cache (dvc checkout %s)", stage, stage)
        return Failed(message=f"stage {stage!r} failed (dvc repro exit {code}): {failure_reason(tail)}")
    return StageResult(stage, "ran", round(time.perf_counter() - t0, 2), _read_metrics(root_path, stage), changed)


def _reasons(changed: dict) -> set[str]:
    reasons: set[str] = set()
    for entries in changed.values():
        for entry in entries if isinstance(entries, list) else [entries]:
            reasons.update(entry.keys() if isinstance(entry, dict) else [str(entry)])
    return reasons or {"changed"}


@flow(name="rlhf-pipeline", log_prints=True)
def pipeline(stages: list[str] | None = None, force: bool = False, retries: int = 0) -> dict:
    """Run the pipeline's DVC stages in order under one MLflow parent run.

    ``stages``: a subset to bring up to date (default: all of ``dvc.yaml``, in order).
    ``force``: re-run even up-to-date stages. ``retries``: Prefect retries of a failed stage.
    Returns ``{"parent_run_id", "stages": [StageResult...], "killed_runs_closed": n}`` (``n``: runs a
    killed earlier run left ``RUNNING``, now marked ``KILLED``) and publishes a markdown summary. A
    failed stage stops the run: the flow run ends ``Failed`` with the stage's one-line error as its
    message (call with ``return_state=True`` to read it; ``rlhf run`` prints it last).
    """
    root = setup_environment()  # a worker's flow run: the project's MLflow store, not a default one
    order = dvc.stage_names(root)
    selected = order if not stages else [s for s in order if s in set(stages)]
    unknown = sorted(set(stages or []) - set(order))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; dvc.yaml has {order}")
    results: list[StageResult] = []
    orphans = tracking.close_orphaned_runs()  # runs a killed earlier run left RUNNING: marked KILLED
    if orphans:
        get_run_logger().info("marked %d MLflow run(s) KILLED: left RUNNING by a process that is gone", len(orphans))
    try:
        with tracking.pipeline_run(tags={"rlhf.stages": ",".join(selected)}) as parent_id:
            for stage in selected:
                runner = run_stage.with_options(retries=retries) if retries else run_stage
                state = runner(stage, str(root), force, return_state=True)
                if state.is_failed():
                    raise StageFailed(state.message)  # through the MLflow run: it ends FAILED
                results.append(state.result())
            summary = {"parent_run_id": parent_id, "stages": [asdict(r) for r in results],
                       "killed_runs_closed": len(orphans)}
            markdown = render_markdown(summary)
            tracking.log_text(markdown, "summary.md")
    except StageFailed as e:  # the flow run ends Failed with the stage's message, without a traceback
        return Failed(message=str(e))
    create_markdown_artifact(markdown, key="rlhf-pipeline-summary", description="RLHF pipeline run summary")
    return summary
