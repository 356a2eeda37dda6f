"""Test-wide settings: no hub downloads, telemetry off, few threads (CI has 2 cores)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("USE_HUB_KERNELS", "NO")  # rlhf_ops/environment.py: HUB_DEFAULTS
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# Tests use tiny models: one thread avoids OpenMP oversubscription when processes share 2 cores.
torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """accelerate keeps one AcceleratorState per process: an ``Accelerator(cpu=True)`` of one test would make
    a later test's ``Accelerator()`` run on the CPU too, even on a GPU machine. Each test starts afresh."""
    yield
    import sys

    if "accelerate.state" in sys.modules:
        sys.modules["accelerate.state"].AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="session")
def smoke_project(tmp_path_factory):
    """The tiny-profile project after one ``rlhf run`` (~2-3 min; shared by tests/smoke and tests/faults)."""
    from tests.smoke.conftest import build_smoke_project

    return build_smoke_project(tmp_path_factory)


@pytest.fixture
def rlhf_in_tmp(monkeypatch, tmp_path, capsys):
    """``rlhf(*argv) -> (exit status, stdout, stderr)``: the CLI run in-process in an empty project (``tmp_path``)."""
    from rlhf_cli import main as cli

    monkeypatch.setattr(cli, "setup_environment", lambda *a, **k: tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = cli.main(list(argv))
        except SystemExit as e:  # argparse
            code = e.code
        out = capsys.readouterr()
        return code, out.out, out.err
    return run
