"""`threads`: one place applies it, the stage entry point, from the stage's own params section."""
from __future__ import annotations

import re
from pathlib import Path

import torch

from rlhf.params import Params
from tasks.stage import apply_threads

REPO = Path(__file__).resolve().parents[2]


def test_the_stage_sections_threads_are_applied(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    params = Params()
    params.ppo.threads = 3
    assert apply_threads(params, ("seed", "ppo")) == 3 and calls == [3]
    assert apply_threads(params, ("seed", "base")) == 0  # 0: torch's default left alone
    assert apply_threads(params, ("seed", "eval")) == 0  # a section without a threads key
    assert apply_threads(params, ()) == 0
    assert calls == [3]


def test_no_other_stage_or_library_code_sets_threads():
    files = [path for package in ("rlhf", "tasks") for path in (REPO / package).rglob("*.py")]
    setters = sorted(str(path.relative_to(REPO)) for path in files
                     if re.search(r"set_num_threads\(", path.read_text(encoding="utf-8")))
    assert setters == ["tasks/stage.py"]
