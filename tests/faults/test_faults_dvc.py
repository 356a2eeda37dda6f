"""Issue 18, cases 2 and 3: every stage output restorable, and stage commands that find the project's Python.

Before: a typo in params.yaml (`ppo.lr: -1.0e-05`) cost `models/policy`, `metrics/ppo.json`,
`reports/ppo/*`: DVC removes a stage's outs before its command runs, and the metrics, reports and
plots had `cache: false`, so `dvc checkout` could not bring them back. And `.venv/bin/dvc repro`
ran `python -m tasks.ppo` with whatever `python` came first on PATH: `No module named 'torch'`.

The end-to-end test (slow) breaks ppo's and prepare's params on a finished tiny project, runs
`dvc repro` and `dvc exp run` from a shell whose PATH lacks the virtualenv, and restores with
`dvc checkout`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)  # the project's virtualenv, the one running the tests
DVC = [sys.executable, "-m", "dvc"]  # DVC itself runs from the venv; the stages it starts must find it too
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def bare_env(**extra: str) -> dict[str, str]:
    """A shell without the virtualenv: PATH=/usr/bin:/bin, nothing pointing at an interpreter or a project."""
    drop = ("VIRTUAL_ENV", "RLHF_PYTHON", "PYTHONPATH", "PYTHONHOME", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME",
            "PREFECT_HOME", "PREFECT_API_URL", "RLHF_PROJECT_ROOT", "RLHF_MLFLOW_PARENT_RUN_ID", "DVC_ROOT", "DVC_STAGE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PATH="/usr/bin:/bin", HF_HUB_OFFLINE="1", DO_NOT_TRACK="1", MLFLOW_DISABLE_TELEMETRY="true",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run(cwd: Path, *cmd: str, ok: bool = True, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), cwd=cwd, env=bare_env(**env), capture_output=True, text=True, timeout=timeout)
    if ok:
        assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def git_commit(project: Path, message: str) -> None:
    run(project, "git", "add", "-A")
    run(project, "git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", message,
        "--allow-empty")


def link_venv(project: Path) -> None:
    """The project's .venv, as `make` creates it (a link to this checkout's), kept out of git."""
    (project / ".venv").symlink_to(VENV, target_is_directory=True)
    with (project / ".git" / "info" / "exclude").open("a") as f:
        f.write("/.venv\n")


# --- dvc.yaml ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_stage_runs_through_tasks_run_sh(name):
    stage = STAGES[name].get("do", STAGES[name])  # a foreach stage (train_policy): its items' definition
    if "foreach" in STAGES[name]:
        assert stage["cmd"].startswith(f"sh tasks/run.sh {name} ") and "${item}" in stage["cmd"]
    else:
        assert stage["cmd"] == f"sh tasks/run.sh {name}"
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage["deps"]]
    assert "tasks/run.sh" in deps and "rlhf_ops/preflight.py" in deps


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_output_is_cached(name):
    """No `cache: false`: `dvc checkout` can restore every out, metric and plot a failed run removed."""
    for key in ("outs", "metrics", "plots"):
        for entry in STAGES[name].get("do", STAGES[name]).get(key, []):
            options = {} if isinstance(entry, str) else next(iter(entry.values())) or {}
            assert options.get("cache", True), f"{name}: {entry} is not cached"


def test_params_rewritten_by_dvc_exp_run_still_load(tmp_path):
    """`dvc exp run -S key=value` rewrites params.yaml with ruamel (YAML 1.2): `'no'` loses its quotes.

    Read as YAML 1.1, `mixed_precision: no` was `False` and every stage refused the file.
    """
    from dvc.utils.serialize import dumps_yaml, parse_yaml_for_update

    from rlhf.params import load_params

    for source in (REPO / "params.yaml", REPO / "tests" / "smoke" / "params.yaml"):
        data = parse_yaml_for_update(source.read_text(encoding="utf-8"), str(source))
        data["ppo"]["lr"] = 2e-5  # what `-S ppo.lr=2e-5` does
        path = tmp_path / "params.yaml"
        path.write_text(dumps_yaml(data), encoding="utf-8")
        assert "mixed_precision: no\n" in path.read_text(encoding="utf-8")
        params = load_params(path)
        assert params.compute.mixed_precision == "no" and params.ppo.lr == 2e-5


# --- case 3: the interpreter, on a project of one stage ---------------------------------------------------
PROBE = '''import json, sys
import torch  # what a bare `python` on PATH does not have
json.dump({"python": sys.executable, "argv": sys.argv[1:]}, open("probe.json", "w"))
'''


@pytest.fixture
def probe_project(tmp_path) -> Path:
    project = tmp_path / "project"
    (project / "tasks").mkdir(parents=True)
    shutil.copy2(REPO / "tasks" / "run.sh", project / "tasks" / "run.sh")
    (project / "tasks" / "__init__.py").write_text("")
    (project / "tasks" / "probe.py").write_text(PROBE)
    (project / "params.yaml").write_text("n: 1\n")
    (project / "dvc.yaml").write_text("stages:\n  probe:\n    cmd: sh tasks/run.sh probe\n"
                                      "    deps: [tasks/run.sh, tasks/probe.py]\n    params: [n]\n"
                                      "    outs: [probe.json]\n")
    run(project, "git", "init", "-q")
    link_venv(project)
    run(project, *DVC, "init", "-q")
    git_commit(project, "probe")
    return project


def test_dvc_repro_and_exp_run_use_the_project_venv_without_it_on_path(probe_project):
    assert subprocess.run(["python3", "-c", "import torch"], env=bare_env(), capture_output=True).returncode != 0, \
        "the bare python3 has torch: this test would prove nothing"
    run(probe_project, *DVC, "repro")
    probe = json.loads((probe_project / "probe.json").read_text())
    assert probe["python"] == str(probe_project / ".venv" / "bin" / "python")

    (probe_project / "probe.json").unlink()
    git_commit(probe_project, "lock")
    out = run(probe_project, *DVC, "exp", "run", "-S", "n=2").stdout
    assert "Ran experiment" in out, out
    assert json.loads((probe_project / "probe.json").read_text())["python"].startswith(str(probe_project / ".venv"))


def test_rlhf_python_wins_and_no_python_at_all_is_one_line(probe_project, tmp_path):
    run(probe_project, *DVC, "repro", "--force", RLHF_PYTHON=sys.executable)
    assert json.loads((probe_project / "probe.json").read_text())["python"] == sys.executable
    # a copy without .venv and no python3 on PATH: the script says what to do
    (probe_project / ".venv").unlink()
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    proc = subprocess.run(["/bin/sh", "tasks/run.sh", "probe"], cwd=probe_project, env=bare_env(PATH=str(empty)),
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("error: probe: no Python interpreter: create the project's .venv (make venv) or set "
                                   "RLHF_PYTHON")


def test_rlhf_run_puts_a_failed_stages_outputs_back(probe_project, monkeypatch):
    """The flow's stage task: `dvc repro` failed (and removed the outs), so it runs `dvc checkout <stage>`."""
    import logging

    import flows.pipeline as pipeline
    from flows import dvc

    run(probe_project, *DVC, "repro")
    before = (probe_project / "probe.json").read_text()
    monkeypatch.setattr(pipeline, "get_run_logger", lambda: logging.getLogger("test"))

    def failing_repro(root, stage, **kwargs):
        (root / "probe.json").unlink()  # what DVC does before the command
        return 1, "error: params.yaml: n: got -1; expected an int >= 0"
    monkeypatch.setattr(dvc, "repro", failing_repro)
    monkeypatch.setattr(dvc, "status", lambda root, stage: {stage: [{"changed params": {"n": "modified"}}]})
    state = pipeline.run_stage.fn("probe", str(probe_project))
    assert state.is_failed() and "params.yaml: n: got -1" in state.message
    assert (probe_project / "probe.json").read_text() == before
    assert dvc.checkout(probe_project, "no-such-stage") is False


# --- cases 2 and 3 end to end: the tiny project, a shell without the venv -----------------------------------
def out_hashes(project: Path, stage: str) -> dict[str, str]:
    """md5 of each out/metric/plot of ``stage`` now, as DVC computes it (``None`` when missing)."""
    from rlhf_ops.lineage import dvc_md5

    paths = [o if isinstance(o, str) else next(iter(o)) for key in ("outs", "metrics", "plots")
             for o in STAGES[stage].get(key, [])]
    return {p: dvc_md5(project, p) for p in paths}


def set_param(project: Path, dotted: str, value) -> None:
    path = project / "params.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.mark.slow
def test_a_params_typo_loses_nothing_and_dvc_finds_the_venv(smoke_project, tmp_path):
    from tests.smoke.ops_helpers import copy_smoke_project

    project = copy_smoke_project(smoke_project, tmp_path / "project")
    link_venv(project)
    git_commit(project, "baseline")  # dvc.lock and the .gitignore entries DVC wrote
    good_params = (project / "params.yaml").read_text(encoding="utf-8")
    before = {stage: out_hashes(project, stage) for stage in STAGES}
    assert all(h for hashes in before.values() for h in hashes.values()), before

    # `rlhf run` refuses before DVC runs: nothing removed, nothing to restore
    set_param(project, "ppo.lr", -1e-5)
    proc = subprocess.run([str(project / ".venv" / "bin" / "rlhf"), "run"], cwd=project, env=bare_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "error: params.yaml: ppo.lr" in proc.stderr, proc.stderr
    assert out_hashes(project, "ppo") == before["ppo"]

    # `dvc repro` (PATH without the venv): the stage finds the venv's python (its own error, not "No module
    # named torch"), DVC has removed its outputs; `dvc checkout` brings every one back
    for stage, dotted, value, expected in (("ppo", "ppo.lr", -1e-5, "ppo.lr"),
                                           ("prepare", "data.split.train", 2.0, "data.split.train")):
        (project / "params.yaml").write_text(good_params, encoding="utf-8")
        set_param(project, dotted, value)
        proc = run(project, *DVC, "repro", ok=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out[-3000:]
        assert f"error: params.yaml: {expected}" in out and "No module named" not in out, out[-3000:]
        assert f"dvc checkout {stage}" in out, out[-3000:]  # the stage says how to restore
        removed = out_hashes(project, stage)
        assert not any(removed.values()), f"DVC no longer removes outs first? {removed}"
        run(project, *DVC, "checkout")
        for name in STAGES:
            assert out_hashes(project, name) == before[name], name
    (project / "params.yaml").write_text(good_params, encoding="utf-8")
    assert json.loads(run(project, *DVC, "status", "--json").stdout) == {}

    # `dvc exp run` (PATH without the venv) re-runs prepare with the venv's python
    proc = run(project, *DVC, "exp", "run", "prepare", "-S", "data.min_chars=6")
    assert "Running stage 'prepare'" in proc.stdout + proc.stderr
    assert "prepare: done" in proc.stdout + proc.stderr
    assert yaml.safe_load((project / "params.yaml").read_text())["data"]["min_chars"] == 6
