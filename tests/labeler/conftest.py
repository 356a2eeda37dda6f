"""Fixtures of the labelling-app tests: a fresh database and a generator that needs no model."""
from __future__ import annotations

import pytest

from labeler.generation import SamplingParams
from labeler.store import LabelStore


def fake_candidates(prompt: str, sampling: SamplingParams) -> list[str]:
    """K distinct texts that depend on the prompt and the seed, like a model's samples."""
    endings = ["很好，推荐！", "一般般吧。", "太差了，不会再买。", "还可以，物流快。", "非常满意。", "质量不行。",
               "性价比高。", "包装破了。", "客服态度好。"]
    return [f"{prompt}{endings[(sampling.seed + i) % len(endings)]}" for i in range(sampling.k)]


@pytest.fixture
def store(tmp_path) -> LabelStore:
    return LabelStore(tmp_path / "labels.db")


@pytest.fixture
def generator():
    """The injected candidate generator (a plain callable)."""
    return fake_candidates
