"""Issue 18, case 5: runs a killed process left RUNNING are marked KILLED at the project's next run.

Before: `kill -9` during `ppo`, re-run: the re-run succeeded and the killed stage run and its
pipeline run said RUNNING forever (phantom runs in the MLflow UI).
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from rich.console import Console

from flows.summary import render_markdown
from rlhf_cli.render import print_run_summary
from rlhf_ops import tracking
from tests.rlhf_ops import conftest as ops_fixtures

empty_db, store = ops_fixtures.empty_db, ops_fixtures.store  # an empty MLflow store per test

HOST = socket.gethostname()


@pytest.fixture
def processes():
    """Start helper processes; each is killed (by its own pid) at the end."""
    started: list[subprocess.Popen] = []

    def start(*cmd: str) -> subprocess.Popen:
        proc = subprocess.Popen(list(cmd))
        started.append(proc)
        return proc
    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def make_run(client, exp, name: str, tags: dict[str, str], start_time: int | None = None) -> str:
    run = client.create_run(exp, tags=tags, run_name=name, start_time=start_time)
    return run.info.run_id


def test_runs_left_running_by_a_gone_process_are_marked_killed(store, processes):
    client, exp = store
    python = processes(sys.executable, "-c", "import time; time.sleep(120)")
    sleeper = processes("sleep", "120")
    time.sleep(0.5)  # the children have started (their /proc start time precedes the runs' start)
    runs = {
        "dead": make_run(client, exp, "ppo", {"rlhf.pid": str(dead_pid()), "rlhf.host": HOST}),
        "alive": make_run(client, exp, "ppo", {"rlhf.pid": str(python.pid), "rlhf.host": HOST}),
        "not python": make_run(client, exp, "ppo", {"rlhf.pid": str(sleeper.pid), "rlhf.host": HOST}),
        # the pid names a live python process started after the run: the run's process is gone (pid reused)
        "reused pid": make_run(client, exp, "ppo", {"rlhf.pid": str(python.pid), "rlhf.host": HOST},
                               start_time=int((time.time() - 3600) * 1000)),
        "other host": make_run(client, exp, "ppo", {"rlhf.pid": str(dead_pid()), "rlhf.host": HOST + "-elsewhere"}),
        "untagged": make_run(client, exp, "ppo", {}),
    }
    finished = make_run(client, exp, "prepare", {"rlhf.pid": str(dead_pid()), "rlhf.host": HOST})
    client.set_terminated(finished)

    closed = tracking.close_orphaned_runs()

    assert sorted(closed) == sorted([runs["dead"], runs["not python"], runs["reused pid"]])
    for key, run_id in runs.items():
        run = client.get_run(run_id)
        if run_id in closed:
            assert run.info.status == "KILLED", key
            assert run.data.tags["rlhf.ended_by"] == "next run found its process gone"
            assert run.info.end_time is not None
        else:
            assert run.info.status == "RUNNING", key
            assert "rlhf.ended_by" not in run.data.tags
    assert client.get_run(finished).info.status == "FINISHED"
    assert tracking.close_orphaned_runs() == []  # once


def test_a_stage_run_closes_them_when_it_starts_and_carries_its_pid_and_host(store, capsys):
    client, exp = store
    orphan = make_run(client, exp, "ppo", {"rlhf.pid": str(dead_pid()), "rlhf.host": HOST})
    with tracking.stage_run("ppo") as run_id:
        pass
    assert client.get_run(orphan).info.status == "KILLED"
    assert "marked 1 MLflow run(s) KILLED" in capsys.readouterr().out
    tags = client.get_run(run_id).data.tags
    assert tags["rlhf.pid"] == str(__import__("os").getpid()) and tags["rlhf.host"] == HOST
    assert client.get_run(run_id).info.status == "FINISHED"


def test_the_run_summary_says_how_many_it_found():
    summary = {"parent_run_id": "abc", "stages": [], "killed_runs_closed": 2}
    assert "Found 2 MLflow runs left RUNNING by a process that is gone (killed): marked KILLED" in \
        render_markdown(summary)
    console = Console(record=True, width=200)
    print_run_summary(summary, console, registry_rows=False)
    assert "Found 2 MLflow runs left RUNNING" in console.export_text()
    assert "left RUNNING" not in render_markdown({**summary, "killed_runs_closed": 0})
