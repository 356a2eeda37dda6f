"""The judge's interface: P(positive | text) in [0, 1] for a batch of texts."""
from __future__ import annotations

from typing import Sequence


class Judge:
    """Scores texts with P(positive) in [0, 1]. Subclasses implement :meth:`_score_nonempty`."""

    def __init__(self, empty_score: float = 0.5):
        self.empty_score = float(empty_score)

    def score(self, texts: Sequence[str]) -> list[float]:
        """P(positive) of each text, in input order; empty/whitespace texts get ``empty_score``."""
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"Judge.score: texts[{i}] is {type(t).__name__} ({t!r}); expected str")
        scores = [self.empty_score] * len(texts)
        keep = [i for i, t in enumerate(texts) if t.strip()]
        if keep:
            for i, s in zip(keep, self._score_nonempty([texts[i] for i in keep])):
                scores[i] = float(s)
        return scores

    __call__ = score

    def _score_nonempty(self, texts: list[str]) -> list[float]:
        raise NotImplementedError
