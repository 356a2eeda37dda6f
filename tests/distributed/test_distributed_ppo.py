"""PPO with 2 CPU processes (gloo) ends where 1 process ends for the same global batch, and resumes."""
import json

import pytest

from tests.distributed.launch import torchrun
from tests.toys import make_base


def launch(n: int, *args: str, port: int, check: bool = True):
    return torchrun(n, "tests.distributed.ppo_worker", *args, port=port, check=check)


def close(a: dict, b: dict) -> None:
    assert len(a["history"]) == len(b["history"])
    for i, (x, y) in enumerate(zip(a["history"], b["history"])):
        for key in x:
            assert y[key] == pytest.approx(x[key], rel=2e-3, abs=2e-4), f"iteration {i + 1} {key}"
    assert b["weights"] == pytest.approx(a["weights"], rel=1e-4)


@pytest.mark.slow
@pytest.mark.extended
def test_two_processes_match_one_and_resume(tmp_path):
    base = make_base(tmp_path / "base")
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir(), (tmp_path / "resumed").mkdir()
    launch(1, str(base), str(tmp_path / "one" / "out.json"), "4", port=29551)
    launch(2, str(base), str(tmp_path / "two" / "out.json"), "4", port=29552)
    one, two = (json.loads((tmp_path / d / "out.json").read_text()) for d in ("one", "two"))
    assert (one["world"], two["world"]) == (1, 2)
    close(one, two)
    # a 2-process run killed (SIGKILL, every worker) after iteration 3 left its checkpoint of iteration 2;
    # started again, it resumes there and ends where the uninterrupted run ended
    checkpoints = tmp_path / "resumed" / "checkpoints"
    killed = launch(2, str(base), str(tmp_path / "resumed" / "first.json"), "4", str(checkpoints), "3",
                    port=29553, check=False)
    assert killed.returncode != 0 and not (tmp_path / "resumed" / "first.json").exists()
    launch(2, str(base), str(tmp_path / "resumed" / "out.json"), "4", str(checkpoints), port=29554)
    resumed = json.loads((tmp_path / "resumed" / "out.json").read_text())
    assert resumed["resumed_from"] == 2
    close(one, resumed)
