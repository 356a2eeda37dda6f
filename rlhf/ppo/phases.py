"""Per-phase wall time of a PPO iteration: ``with phases("generate"): ...``.

:func:`rlhf.ppo.trainer.ppo_step` times its phases with a :class:`Phases` and reports them as
``time/<phase>`` metrics (seconds). ``benchmarks/roofline.py`` passes a subclass that also counts
each phase's FLOPs. A phase entered several times adds up.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

# The phases of one iteration, in order (``ppo_step`` and ``rollout``; ``score_policy`` only when the
# policy's old log-probs and values need a forward of their own, i.e. when the GPT-2 decoding loop did not sample):
PHASES = ("generate", "score_policy", "score_ref", "reward", "advantages", "update")


class Phases:
    """Seconds spent in each named phase (``seconds[name]``), summed over its entries."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def add(self, name: str, seconds: float) -> None:
        """Count ``seconds`` to phase ``name`` (for a stretch of code not in a ``with`` block)."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def metrics(self) -> dict[str, float]:
        """``{"time/<phase>": seconds}``."""
        return {f"time/{name}": s for name, s in self.seconds.items()}
