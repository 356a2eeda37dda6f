"""A linear reference for the reward model: TF-IDF character n-grams and a logistic regression.

A neural reward model earns its keep only if it ranks better than this. Two kinds, chosen by
what the train split holds (:func:`fit_baseline`):

``tfidf_logreg``     labelled texts ``(text, 0/1 label)`` (``data/prepared/splits/train.jsonl`` of
                     a labelled corpus): logistic regression on the TF-IDF character n-gram vector
                     x of a text; score = its decision function w·x + b (log-odds of positive).
``pairwise_ranker``  rank lists alone (human lists, imported lists: no labels): logistic regression
                     without intercept on ``x_w - x_l`` (class 1) and ``x_l - x_w`` (class 0) for
                     every cross-tier pair of the train rank lists, i.e. a linear RankNet /
                     Bradley-Terry model; score = w·x.

Both read ``prompt + text`` as the reward model does, and are ranked by the code that ranks it
(:func:`rlhf.reward.evaluate.evaluate_text_scorer`). scikit-learn does the fitting.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

KINDS = ("auto", "tfidf_logreg", "pairwise_ranker")
TRAIN_TEXTS = Path("splits/train.jsonl")        # under the prepared directory
TRAIN_LISTS = Path("ranklists/train.jsonl")


@dataclass(frozen=True)
class BaselineConfig:
    """The baseline's fixed recipe (a yardstick: the same on every run, so its figures compare).

    Defaults: character 1-3-grams, sublinear tf, min_df 2, C 4 (issue 17's reference figures).
    """

    ngram_min: int = 1            # shortest character n-gram
    ngram_max: int = 3            # longest character n-gram
    min_df: int = 2               # an n-gram must occur in at least this many train texts
    sublinear_tf: bool = True     # tf -> 1 + log(tf)
    C: float = 4.0                # inverse L2 regularisation strength of the logistic regression
    max_iter: int = 2000          # solver iterations (lbfgs)


@dataclass
class LinearBaseline:
    """A fitted baseline: ``score_texts(texts) -> (n,)`` scores, higher = better (as :class:`RewardScorer`)."""

    kind: str                     # 'tfidf_logreg' or 'pairwise_ranker'
    vectorizer: Any               # sklearn TfidfVectorizer
    classifier: Any               # sklearn LogisticRegression
    n_train_texts: int
    n_train_pairs: int            # 0 for tfidf_logreg
    fit_seconds: float
    config: BaselineConfig

    def score_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(n,) float32 scores of ``texts`` (the decision function of the linear model)."""
        if not len(texts):
            return torch.zeros(0)
        x = self.vectorizer.transform(list(texts))
        return torch.as_tensor(self.classifier.decision_function(x), dtype=torch.float32).reshape(-1)

    def describe(self) -> dict[str, Any]:
        """What it is and what it was fit on, for metrics files and tables."""
        return {"kind": self.kind, "n_train_texts": self.n_train_texts, "n_train_pairs": self.n_train_pairs,
                "n_features": len(self.vectorizer.vocabulary_), "fit_seconds": round(self.fit_seconds, 2),
                "config": asdict(self.config)}


def _vectorizer(cfg: BaselineConfig, n_texts: int):
    from sklearn.feature_extraction.text import TfidfVectorizer

    # min_df above the corpus size would leave no feature: a tiny train split still gets a vocabulary.
    return TfidfVectorizer(analyzer="char", ngram_range=(cfg.ngram_min, cfg.ngram_max),
                           min_df=min(cfg.min_df, max(n_texts // 2, 1)), sublinear_tf=cfg.sublinear_tf)


def fit_labelled_baseline(texts: Sequence[str], labels: Sequence[int], cfg: BaselineConfig = BaselineConfig()
                          ) -> LinearBaseline:
    """``tfidf_logreg`` on labelled texts (labels 0/1, both present)."""
    from sklearn.linear_model import LogisticRegression

    labels = [int(y) for y in labels]
    if len(texts) != len(labels):
        raise ValueError(f"fit_labelled_baseline: {len(texts)} texts but {len(labels)} labels")
    if set(labels) != {0, 1}:
        raise ValueError(f"fit_labelled_baseline: labels {sorted(set(labels))}; expected both 0 and 1")
    t0 = time.perf_counter()
    vec = _vectorizer(cfg, len(texts))
    x = vec.fit_transform(list(texts))
    clf = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter).fit(x, labels)
    return LinearBaseline("tfidf_logreg", vec, clf, len(texts), 0, time.perf_counter() - t0, cfg)


def fit_pairwise_baseline(lists: Iterable[Any], cfg: BaselineConfig = BaselineConfig()) -> LinearBaseline:
    """``pairwise_ranker`` on rank lists (anything :func:`rlhf.reward.evaluate.prepare_lists` takes; invalid
    lists are skipped). Every cross-tier pair of a list is one example, both ways round."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    from rlhf.reward.evaluate import prepare_lists
    from rlhf.reward.loss import build_rank_pairs

    views, _ = prepare_lists(lists, on_invalid="skip")
    if not views:
        raise ValueError("fit_pairwise_baseline: no valid train rank list (each needs 2+ tiers)")
    t0 = time.perf_counter()
    texts = [t for v in views for t in v.texts()]
    pairs = build_rank_pairs([v.tiers for v in views], [v.id for v in views])
    vec = _vectorizer(cfg, len(set(texts)))
    x = vec.fit_transform(texts)
    diff = x[pairs.winner.numpy()] - x[pairs.loser.numpy()]  # (n_pairs, n_features)
    clf = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter, fit_intercept=False)
    clf.fit(sp.vstack([diff, -diff]).tocsr(), [1] * pairs.n_pairs + [0] * pairs.n_pairs)
    return LinearBaseline("pairwise_ranker", vec, clf, len(texts), pairs.n_pairs, time.perf_counter() - t0, cfg)


def read_labelled(path: Path) -> tuple[list[str], list[int]]:
    """``(texts, labels)`` of a ``{"text", "label"}`` JSONL split; empty lists for a missing or empty file."""
    texts, labels = [], []
    if not path.is_file():
        return texts, labels
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                texts.append(str(rec["text"]))
                labels.append(int(rec["label"]))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{number}: expected a JSON object with 'text' and a 0/1 'label' ({e})"
                                 ) from None
    return texts, labels


def fit_baseline(prepared_dir: str | Path, kind: str = "auto", cfg: BaselineConfig = BaselineConfig()
                 ) -> LinearBaseline:
    """Fit the baseline on the train split of a ``prepare`` output directory (``data/prepared``).

    ``kind='auto'``: ``tfidf_logreg`` when ``splits/train.jsonl`` holds texts of both labels (a
    labelled corpus), else ``pairwise_ranker`` on ``ranklists/train.jsonl`` (rank-list input,
    human lists). Raises ``FileNotFoundError`` when the directory holds no usable train split.
    """
    from rlhf.data.ranklist import read_ranklists

    if kind not in KINDS:
        raise ValueError(f"baseline kind {kind!r}; expected one of {', '.join(KINDS)}")
    root = Path(prepared_dir)
    texts, labels = read_labelled(root / TRAIN_TEXTS)
    if kind in ("auto", "tfidf_logreg") and set(labels) == {0, 1}:
        return fit_labelled_baseline(texts, labels, cfg)
    if kind == "tfidf_logreg":
        raise FileNotFoundError(f"{root / TRAIN_TEXTS}: no labelled train texts of both labels for a tfidf_logreg "
                                "baseline; run the prepare stage on a labelled corpus, or use kind 'pairwise_ranker'")
    lists_path = root / TRAIN_LISTS
    if not lists_path.is_file():
        raise FileNotFoundError(f"no train split in {root}: neither labelled texts ({TRAIN_TEXTS}) nor rank lists "
                                f"({TRAIN_LISTS}); run the prepare stage first (dvc repro prepare, or rlhf run)")
    lists = read_ranklists(lists_path, allow_empty=True)
    if not lists:
        raise FileNotFoundError(f"{lists_path}: no train rank list to fit the baseline on; run the prepare stage")
    return fit_pairwise_baseline(lists, cfg)
