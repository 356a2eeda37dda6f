"""Reward-model training with 2 CPU processes (gloo) ends where 1 process ends, for the same global batch."""
import json

import pytest

from tests.distributed.launch import torchrun
from tests.toys import make_base


def launch(n: int, *args: str, port: int, check: bool = True):
    return torchrun(n, "tests.distributed.rm_worker", *args, port=port, check=check)


@pytest.mark.slow
@pytest.mark.extended
def test_two_processes_match_one(tmp_path):
    base = make_base(tmp_path / "base")
    one, two, accum = tmp_path / "one.json", tmp_path / "two.json", tmp_path / "accum.json"
    launch(1, str(base), str(one), port=29531)
    launch(2, str(base), str(two), port=29532)
    launch(1, str(base), str(accum), "3", port=29533)  # one process, 3 micro-batches per step
    a, b, c = (json.loads(p.read_text()) for p in (one, two, accum))
    assert (a["world"], b["world"]) == (1, 2)
    assert a["steps"] == b["steps"] == c["steps"] == 10  # 37 lists / 8 per step -> 5 steps x 2 epochs
    for other in (b, c):
        assert other["curve"] == pytest.approx(a["curve"], rel=1e-4, abs=1e-5)
        assert other["weights"] == pytest.approx(a["weights"], rel=1e-4)
        assert other["dev"] == pytest.approx(a["dev"], abs=1e-9)
