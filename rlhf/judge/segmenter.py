"""snownlp's word segmenter, vectorised over a batch: the same words, ~30x faster.

snownlp's sentiment model spends ~95 % of its time segmenting words one text at a time in
Python; :class:`SnowSegmenter` does it for every text of a batch at once with numpy, from the
counts of snownlp's own segmentation model, and gives the same words (``tests/rlhf/judge``
compares it with snownlp on corpus lines, ties and unseen characters included).
"""
from __future__ import annotations

import functools
from operator import itemgetter
from typing import Sequence

import numpy as np


class SnowSegmenter:
    """snownlp's character-based generative word segmenter (Wang et al. 2009, ``seg/y09_2047.py``),
    same output, vectorised over all the texts of a call.

    snownlp tags each character b/m/e/s by a Viterbi search over a trigram model of (char, tag)
    states, one text at a time, rebuilding every transition's interpolated probability
    ``log(l1 P(s3) + l2 P(s3|s2) + l3 P(s3|s1,s2))`` from dict look-ups in Python. Here the
    counts live in sorted int64 key arrays; the (chars, 4, 4, 4) transition tables of a whole
    batch are built with ``searchsorted`` and the Viterbi runs over all runs of Chinese characters
    at once. The float operations are snownlp's, in its order, and ties resolve as its visiting
    order does (first maximum over the previous-previous tag; an unseen character copies the scores
    of the last state), so the words are the same.
    """

    def __init__(self, model) -> None:
        self.status = tuple(model.status)
        tag = {t: i for i, t in enumerate(self.status)}
        if len(tag) != 4:
            raise ValueError(f"expected snownlp's 4 segmentation tags, got {self.status!r}")
        self.char_id = {"": 0}
        for w, _t in model.uni.d:
            self.char_id.setdefault(w, len(self.char_id))
        self.unknown_id = len(self.char_id)  # shared by every unseen character: all its counts are 0
        n = self.n_chars = self.unknown_id + 1

        # state code = char id * 4 + tag index; the start state ('', 'BOS') is code 0
        code = {state: (0 if state == ("", "BOS") else self.char_id[state[0]] * 4 + tag[state[1]])
                for state in model.uni.d}
        self.uni = np.zeros(n * 4)  # count of each (char, tag) at its state code
        self.uni[np.fromiter(code.values(), dtype=np.int64, count=len(code))] = np.fromiter(
            model.uni.d.values(), dtype=np.float64, count=len(code))
        self.known = (self.uni.reshape(n, 4) != 0).any(axis=1)
        self.known[0] = False
        self.uni_total, self.l1, self.l2, self.l3 = model.uni.total, model.l1, model.l2, model.l3

        def sorted_keys(counts: dict, order: int) -> tuple[np.ndarray, np.ndarray]:
            # key = (char ids as a base-n number) * 4**order + (tags as a base-4 number)
            chars = np.zeros(len(counts), dtype=np.int64)
            tags = np.zeros(len(counts), dtype=np.int64)
            for k in range(order):  # map(): C-level loops, ~1M look-ups per column
                s = np.fromiter(map(code.__getitem__, map(itemgetter(k), counts)), dtype=np.int64,
                                count=len(counts))
                chars, tags = chars * n + (s >> 2), tags * 4 + (s & 3)
            keys = chars * 4 ** order + tags
            values = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            perm = np.argsort(keys, kind="stable")
            return keys[perm], values[perm]

        self.bi_keys, self.bi_counts = sorted_keys(model.bi.d, 2)
        self.tri_keys, self.tri_counts = sorted_keys(model.tri.d, 3)

    @staticmethod
    def _dense(keys: np.ndarray, counts: np.ndarray, chars: np.ndarray, width: int) -> np.ndarray:
        """(N, width) counts of every tag combination of each char n-gram code in ``chars`` (N,)."""
        base = chars * width
        lo = np.searchsorted(keys, base)
        hits = np.searchsorted(keys, base + width) - lo
        out = np.zeros((len(chars), width))
        if hits.any():
            rows = np.repeat(np.arange(len(chars)), hits)
            entry = np.arange(hits.sum()) - np.repeat(np.cumsum(hits) - hits, hits) + np.repeat(lo, hits)
            out[rows, keys[entry] - base[rows]] = counts[entry]
        return out

    def _log_probs(self, c2: np.ndarray, c1: np.ndarray, c0: np.ndarray) -> np.ndarray:
        """(N, 4, 4, 4) log P((c0, t0) | (c2, t2), (c1, t1)) indexed [t2, t1, t0], char id 0 = start."""
        n, tags = self.n_chars, np.arange(4)
        uni0 = self.uni[c0[:, None] * 4 + tags]  # (N, t0)
        uni1 = self.uni[c1[:, None] * 4 + tags]  # (N, t1)
        bi10 = self._dense(self.bi_keys, self.bi_counts, c1 * n + c0, 16).reshape(-1, 4, 4)  # (N, t1, t0)
        bi21 = self._dense(self.bi_keys, self.bi_counts, c2 * n + c1, 16).reshape(-1, 4, 4)  # (N, t2, t1)
        tri = self._dense(self.tri_keys, self.tri_counts, (c2 * n + c1) * n + c0, 64).reshape(-1, 4, 4, 4)
        # snownlp's CharacterBasedGenerativeModel.log_prob, operation for operation
        uni_term = self.l1 * (uni0 / self.uni_total)
        den1 = np.broadcast_to(uni1[:, :, None], bi10.shape)
        bi_term = np.divide(self.l2 * bi10, den1, out=np.zeros_like(bi10), where=den1 != 0)
        den2 = np.broadcast_to(bi21[..., None], tri.shape)
        tri_term = np.divide(self.l3 * tri, den2, out=np.zeros_like(tri), where=den2 != 0)
        total = (uni_term[:, None, None, :] + bi_term[:, None, :, :]) + tri_term
        with np.errstate(divide="ignore"):
            return np.log(total)  # log(0) = -inf, as snownlp

    def tags(self, runs: Sequence[str]) -> list[list[str]]:
        """The b/m/e/s tag of each character of each run of Chinese characters."""
        if not runs:
            return []
        order = sorted(range(len(runs)), key=lambda r: -len(runs[r]))  # active runs stay a prefix
        lengths = np.array([len(runs[r]) for r in order])
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        get = self.char_id.get
        c0 = np.array([get(ch, self.unknown_id) for r in order for ch in runs[r]], dtype=np.int64)
        pos = np.arange(len(c0)) - np.repeat(offsets, lengths)
        c1 = np.where(pos >= 1, np.roll(c0, 1), 0)
        c2 = np.where(pos >= 2, np.roll(c0, 2), 0)
        lp = self._log_probs(c2, c1, c0)  # (N, t2, t1, t0)
        known = self.known[c0]
        back = np.zeros((len(c0), 4, 4), dtype=np.int64)  # back[j, t1, t0] = best t2
        score1 = np.zeros((len(runs), 4))  # after the first char: start state -> t0
        score = np.zeros((len(runs), 4, 4))  # after two or more: [t2, t1]
        for i in range(int(lengths[0])):
            k = int((lengths > i).sum())
            j = offsets[:k] + i
            kn = known[j][:, None, None]
            if i == 0:
                score1[:k] = np.where(known[j][:, None], lp[j, 0, 0, :], 0.0)
            elif i == 1:
                score[:k] = np.where(kn, score1[:k, :, None] + lp[j, 0], score1[:k, :, None])
            else:
                cand = score[:k, :, :, None] + lp[j]  # (k, t2, t1, t0)
                best = cand.argmax(axis=1)  # first maximum, as snownlp's strict '>'
                back[j] = np.where(kn, best, 3)
                score[:k] = np.where(kn, np.take_along_axis(cand, best[:, None], 1)[:, 0],
                                     score[:k, 3, :, None])  # unseen char: the last t2's state
        tags = np.zeros(len(c0), dtype=np.int64)
        last = offsets + lengths - 1
        one = lengths == 1
        tags[last[one]] = score1[one].argmax(axis=1)
        # snownlp's final max walks its states in the order (t1, t2); first maximum wins
        flat = score[~one].transpose(0, 2, 1).reshape(-1, 16).argmax(axis=1)
        tags[last[~one]], tags[last[~one] - 1] = flat // 4, flat % 4
        for i in range(int(lengths[0]) - 1, 1, -1):
            j = offsets[: int((lengths > i).sum())] + i
            tags[j - 2] = back[j, tags[j - 1], tags[j]]
        out: list[list[str]] = [[] for _ in runs]
        for r, off, length in zip(order, offsets, lengths):
            out[r] = [self.status[t] for t in tags[off:off + length]]
        return out

    def words(self, runs: Sequence[str]) -> list[list[str]]:
        """Words of each run of Chinese characters (snownlp's ``Seg.seg`` over :meth:`tags`)."""
        result = []
        for chars, tags in zip(runs, self.tags(runs)):
            words, cur = [], ""
            for ch, tag in zip(chars, tags):
                if tag == "e":
                    words.append(cur + ch)
                    cur = ""
                elif tag in ("b", "s"):
                    if cur:
                        words.append(cur)
                    cur = ch
                else:
                    cur += ch
            if cur:
                words.append(cur)
            result.append(words)
        return result


@functools.lru_cache(maxsize=1)
def shared_segmenter() -> SnowSegmenter:
    """One segmenter per process: its tables take a few seconds to build from snownlp's model."""
    from snownlp import seg

    return SnowSegmenter(seg.segger.segger)
