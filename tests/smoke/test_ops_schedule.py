"""`rlhf schedule` against a real `prefect server start`: serve with a cron schedule, trigger a run, deploy to a pool."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.smoke.conftest import child_env
from tests.smoke.ops_helpers import clean_env, copy_smoke_project, prefect_server, stop

pytestmark = pytest.mark.slow
STAGES = ("prepare", "base", "train_reward_model", "evaluate_reward_model", "ppo", "train_policy", "evaluate_samples")
# the MLflow stage runs: train_policy is a foreach stage, one run per TRL algorithm
STAGE_RUNS = tuple(s for s in STAGES if s != "train_policy") + ("train_policy@grpo", "train_policy@rloo",
                                                                 "train_policy@dpo")

# Run in the project, against the server: wait for the served deployment, register a second one on a
# process work pool, trigger one run of the served deployment and wait for it, read both back.
CLIENT_SCRIPT = r"""
import json, sys, time
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments import run_deployment
from prefect.workers.process import ProcessWorker

from flows import schedule

def read(client, name, wait=180):
    deadline = time.monotonic() + wait
    while True:
        try:
            return client.read_deployment_by_name(name)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)

def describe(d):
    return {"paused": d.paused, "work_pool": d.work_pool_name, "pull_steps": d.pull_steps,
            "schedules": [{"cron": s.schedule.cron, "timezone": s.schedule.timezone, "active": s.active}
                          for s in d.schedules]}

with get_client(sync_client=True) as client:
    served = describe(read(client, "rlhf-pipeline/scheduled"))
    client.create_work_pool(WorkPoolCreate(name="rlhf", type="process",
                                           base_job_template=ProcessWorker.get_default_base_job_template()))
schedule.deploy("30 2 * * 1", pool="rlhf", name="nightly", timezone="Europe/Berlin")
run = run_deployment("rlhf-pipeline/scheduled", timeout=float(sys.argv[1]), poll_interval=2)
with get_client(sync_client=True) as client:
    pooled = describe(read(client, "rlhf-pipeline/nightly"))
print(json.dumps({"served": served, "pooled": pooled, "state": run.state.type.value, "run_name": run.name}))
"""


def _stage_runs_of_last_pipeline(project: Path) -> dict[str, dict]:
    con = sqlite3.connect(project / "mlflow.db")
    try:
        def tags(run_id):
            return dict(con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall())

        parents = [r for (r,) in con.execute("SELECT run_uuid FROM runs ORDER BY start_time")
                   if tags(r).get("rlhf.kind") == "pipeline"]
        children = con.execute("SELECT t.run_uuid, r.name FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid "
                               "WHERE t.key = 'mlflow.parentRunId' AND t.value = ?", (parents[-1],)).fetchall()
        return {name: tags(run_id) for run_id, name in children}
    finally:
        con.close()


def test_schedule_serves_cron_deployment_and_runs_it(smoke_project: Path, tmp_path: Path):
    project = copy_smoke_project(smoke_project, tmp_path / "project")
    with prefect_server(tmp_path / "prefect-server") as api_url:
        env = {**child_env(project), "PREFECT_API_URL": api_url}
        log = tmp_path / "serve.log"
        with log.open("w") as out:
            serve = subprocess.Popen([sys.executable, "-m", "rlhf_cli.main", "schedule", "--cron", "0 3 * * *"],
                                     cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT, "600"], cwd=project, env=env,
                                  capture_output=True, text=True, timeout=900)
        finally:
            stop(serve)
        served_log = log.read_text()
        assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}\n--- serve\n{served_log[-5000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    assert result["state"] == "COMPLETED", served_log[-5000:]
    assert result["served"]["schedules"] == [{"cron": "0 3 * * *", "timezone": "UTC", "active": True}]
    assert result["pooled"]["work_pool"] == "rlhf"
    assert result["pooled"]["schedules"] == [{"cron": "30 2 * * 1", "timezone": "Europe/Berlin", "active": True}]
    assert result["pooled"]["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(project)}}]
    # Everything was up to date: each stage reported skipped, in the log and in MLflow (with its data hashes).
    assert "serving deployment rlhf-pipeline/scheduled" in served_log
    for stage in STAGES:
        assert f"{stage}: up to date (dvc.lock), skipped" in served_log, stage
    runs = _stage_runs_of_last_pipeline(project)
    assert set(runs) == set(STAGE_RUNS)
    assert all(tags["rlhf.status"] == "skipped" and tags["rlhf.data_hash"] for tags in runs.values())

