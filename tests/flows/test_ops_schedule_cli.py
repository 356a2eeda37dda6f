"""`rlhf schedule` without a Prefect server, and its argument checks (no server is started here)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flows import schedule
from tests.smoke.ops_helpers import clean_env, free_port

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_flows_changes_no_environment(tmp_path: Path):
    """Entry points set the environment up (before Prefect is imported), not an import."""
    code = ("import os; before = dict(os.environ); import flows.schedule, flows.pipeline, rlhf_cli.main, tasks.stage; "
            "changed = sorted(k for k in {*before, *os.environ} if before.get(k) != os.environ.get(k)); "
            "assert not changed, changed")
    env = clean_env(PYTHONPATH=str(REPO), PREFECT_HOME=str(tmp_path / "prefect-home"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_check_server_refuses_a_dead_server():
    with pytest.raises(schedule.ServerUnavailable, match="no Prefect server answers at PREFECT_API_URL=http://127.0"):
        schedule.check_server(f"http://127.0.0.1:{free_port()}/api", timeout=1.0)


def test_cron_schedule_validates():
    cron_schedule, flow_parameters = schedule.cron_schedule, schedule.flow_parameters
    assert cron_schedule("0 3 * * *", "Europe/Berlin").cron == "0 3 * * *"
    with pytest.raises(ValueError, match=r"invalid schedule --cron '0 3 \* \*'.*Invalid cron string"):
        cron_schedule("0 3 * *")
    with pytest.raises(ValueError, match="Invalid timezone"):
        cron_schedule("0 3 * * *", "Mars/Olympus")
    assert flow_parameters() == {} and flow_parameters(["ppo"], True, 2) == {"stages": ["ppo"], "force": True,
                                                                              "retries": 2}


def test_schedule_without_server_says_how_to_start_one(tmp_path: Path):
    """No PREFECT_API_URL, then one where nothing listens: exit 1, a message, no traceback, no ephemeral server."""
    for api_url in (None, f"http://127.0.0.1:{free_port()}/api"):
        env = clean_env(PREFECT_HOME=str(tmp_path / "prefect-home"), PYTHONPATH=str(REPO))
        if api_url:
            env["PREFECT_API_URL"] = api_url
        proc = subprocess.run([sys.executable, "-m", "rlhf_cli.main", "schedule", "--cron", "0 3 * * *"], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=180)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out
        assert "Traceback" not in out and "Starting temporary server" not in out
        assert "prefect server start" in proc.stderr
        assert "export PREFECT_API_URL=http://127.0.0.1:4200/api" in proc.stderr
        if api_url:
            assert f"no Prefect server answers at PREFECT_API_URL={api_url}" in proc.stderr
        else:
            assert "PREFECT_API_URL is not set" in proc.stderr
