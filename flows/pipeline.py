"""The pipeline flow: every DVC stage as a Prefect task, one MLflow parent run, a run summary.

Each task runs ``dvc repro --single-item <stage>``, so DVC decides what is up to date
(``dvc.lock``); an unchanged stage is reported as skipped, not re-run. Stage processes nest their
MLflow runs under the flow's parent run (``RLHF_MLFLOW_PARENT_RUN_ID``).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tasks.environment import setup_environment

ROOT = setup_environment()  # before Prefect is imported: PREFECT_HOME, telemetry off

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from flows import dvc  # noqa: E402
from flows.summary import render_markdown  # noqa: E402
from tasks import tracking  # noqa: E402


class StageFailed(RuntimeError):
    """A stage's command exited non-zero; the message carries the end of its output."""


@dataclass
class StageResult:
    stage: str
    status: str  # "ran" | "skipped" | "failed"
    seconds: float
    metrics: dict = field(default_factory=dict)
    changed: dict = field(default_factory=dict)


def _read_metrics(root: Path, stage: str) -> dict:
    path = dvc.stage_metrics_file(root, stage)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


@task(name="stage", task_run_name="{stage}", cache_policy=NO_CACHE, persist_result=False)
def run_stage(stage: str, root: str, force: bool = False) -> StageResult:
    """Bring one DVC stage up to date; skipped (and logged as such) when DVC says it already is."""
    logger = get_run_logger()
    root_path = Path(root)
    t0 = time.perf_counter()
    changed = {} if force else dvc.status(root_path, stage)
    if not changed and not force:
        metrics = _read_metrics(root_path, stage)
        tracking.record_skipped_stage(stage, metrics)
        logger.info("%s: up to date (dvc.lock), skipped", stage)
        return StageResult(stage, "skipped", round(time.perf_counter() - t0, 2), metrics)
    logger.info("%s: running (%s)", stage, "forced" if force else ", ".join(sorted(_reasons(changed))))
    code, tail = dvc.repro(root_path, stage, force=force)
    if code != 0:
        raise StageFailed(f"stage {stage!r} failed (dvc repro exit {code}); last output:\n{tail}")
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
    Returns ``{"parent_run_id", "stages": [StageResult...]}`` and publishes a markdown summary.
    """
    root = ROOT
    order = dvc.stage_names(root)
    selected = order if not stages else [s for s in order if s in set(stages)]
    unknown = sorted(set(stages or []) - set(order))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; dvc.yaml has {order}")
    results: list[StageResult] = []
    with tracking.pipeline_run(tags={"rlhf.stages": ",".join(selected)}) as parent_id:
        for stage in selected:
            runner = run_stage.with_options(retries=retries) if retries else run_stage
            results.append(runner(stage, str(root), force))
        summary = {"parent_run_id": parent_id, "stages": [asdict(r) for r in results]}
        markdown = render_markdown(summary)
        tracking.log_text(markdown, "summary.md")
    create_markdown_artifact(markdown, key="rlhf-pipeline-summary", description="RLHF pipeline run summary")
    return summary
