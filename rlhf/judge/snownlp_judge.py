"""The default judge: the sentiment model that ships with the ``snownlp`` package.

Exactly ``snownlp.SnowNLP(text).sentiments`` (same floats), with snownlp's word segmentation
(~95 % of its time) done by :class:`~rlhf.judge.segmenter.SnowSegmenter` for the whole batch:
~0.15 s instead of ~4.5 s for 1000 short reviews on one CPU core. When snownlp's internals
differ from what the segmenter was written for, the judge warns and falls back to snownlp's own
``sentiment.classify`` (:attr:`SnowNLPJudge.fast` is then False).
"""
from __future__ import annotations

import warnings

from rlhf.judge.base import Judge
from rlhf.judge.segmenter import SnowSegmenter, shared_segmenter


class SnowNLPJudge(Judge):
    """The ``snownlp`` package's sentiment model: ``SnowNLP(text).sentiments``, loaded once."""

    _SELF_CHECK = ("这部电影很好看，强烈推荐！", "质量太差了，再也不买了", "刚收到货，感觉abc 123还行吧", "好")
    _CHUNK_CHARS = 16_384  # characters segmented per vectorised pass: bounds memory to tens of MB

    def __init__(self, empty_score: float = 0.5):
        super().__init__(empty_score)
        from snownlp import normal, seg, sentiment  # loads the marshalled models (a few seconds)

        self._sentiment = sentiment
        self._re_zh, self._stop = seg.re_zh, normal.stop
        self._bayes = sentiment.classifier.classifier
        try:
            self._segmenter: SnowSegmenter | None = shared_segmenter()
            ours = self._score_nonempty(list(self._SELF_CHECK))
            mismatch = [t for t, s in zip(self._SELF_CHECK, ours) if s != sentiment.classify(t)]
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            mismatch = [f"{type(e).__name__}: {e}"]
        if mismatch:
            warnings.warn(f"snownlp internals differ from the version this judge was written for ({mismatch[0]!r}); "
                          f"falling back to snownlp's own (slower) sentiment.classify", RuntimeWarning)
            self._segmenter = None

    @property
    def fast(self) -> bool:
        """True when the vectorised segmenter scores; False after the fallback to snownlp's ``classify``."""
        return self._segmenter is not None

    def _score_nonempty(self, texts: list[str]) -> list[float]:
        if self._segmenter is None:
            return [self._sentiment.classify(t) for t in texts]
        # snownlp's Sentiment.handle: segment the Chinese runs, split the rest on white space,
        # drop stop words; the runs of every text are segmented together.
        pieces: list[list[str | int]] = []  # per text: words, or the index of a Chinese run
        runs: list[str] = []
        for text in texts:
            parts: list[str | int] = []
            for part in self._re_zh.split(text):
                part = part.strip()
                if not part:
                    continue
                if self._re_zh.match(part):
                    parts.append(len(runs))
                    runs.append(part)
                else:
                    parts += [w for w in (w.strip() for w in part.split()) if w]
            pieces.append(parts)
        run_words: list[list[str]] = []
        start = 0
        while start < len(runs):
            end, chars = start, 0
            while end < len(runs) and (end == start or chars + len(runs[end]) <= self._CHUNK_CHARS):
                chars += len(runs[end])
                end += 1
            run_words += self._segmenter.words(runs[start:end])
            start = end
        scores = []
        for parts in pieces:
            words = [w for p in parts for w in (run_words[p] if isinstance(p, int) else [p]) if w not in self._stop]
            label, prob = self._bayes.classify(words)
            scores.append(prob if label == "pos" else 1 - prob)
        return scores
