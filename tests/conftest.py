"""Test-wide settings: no hub downloads, telemetry off, few threads (CI has 2 cores)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

# Tests use tiny models: one thread avoids OpenMP oversubscription when processes share 2 cores.
torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def smoke_project(tmp_path_factory):
    """The tiny-profile project after one ``rlhf run`` (~2-3 min; shared by tests/smoke and tests/faults)."""
    from tests.smoke.conftest import build_smoke_project

    return build_smoke_project(tmp_path_factory)
