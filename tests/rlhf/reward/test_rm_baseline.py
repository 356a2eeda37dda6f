"""The linear baseline: both kinds, the automatic choice, its errors, and scoring by the RM's ranking code."""
import json
import random
from pathlib import Path

import pytest
import torch

from rlhf.reward.baseline import fit_baseline, fit_labelled_baseline, fit_pairwise_baseline
from rlhf.reward.evaluate import evaluate_reward_model, evaluate_text_scorer

POSITIVE = ["质量很好，很满意", "非常好用，推荐购买", "服务很好，下次还来", "很喜欢，物超所值", "好看好用，值得",
            "包装很好，快递很快", "性价比高，很满意", "手感很好，推荐", "房间干净，服务好", "非常满意，五星好评"]
NEGATIVE = ["质量太差，很失望", "非常难用，不推荐", "服务很差，不会再来", "很失望，浪费钱", "难看难用，后悔",
            "包装破损，快递太慢", "性价比低，不满意", "手感很差，退货", "房间很脏，服务差", "非常失望，差评"]
TEST_LISTS = [{"id": "t1", "prompt": "", "tiers": [["很满意，好用"], ["很失望，难用"]]},
              {"id": "t2", "prompt": "", "tiers": [["服务好，推荐"], ["服务差，不推荐", "太差了，退货"]]},
              {"id": "t3", "prompt": "这次", "tiers": [["非常好"], ["非常差"]]}]


def train_lists(n: int = 20, seed: int = 0) -> list[dict]:
    """Rank lists with no labels: two positive texts over two negative ones, drawn from the pools."""
    rng = random.Random(seed)
    return [{"id": f"l{i}", "prompt": "", "tiers": [rng.sample(POSITIVE, 2), rng.sample(NEGATIVE, 2)]}
            for i in range(n)]


def test_labelled_baseline_ranks_by_the_label():
    linear = fit_labelled_baseline(POSITIVE + NEGATIVE, [1] * 10 + [0] * 10)
    assert linear.kind == "tfidf_logreg" and linear.n_train_texts == 20 and linear.n_train_pairs == 0
    scores = linear.score_texts(["非常满意，推荐", "非常失望，差评"])
    assert scores.shape == (2,) and scores[0] > scores[1]
    figures = evaluate_text_scorer(linear, TEST_LISTS)
    assert figures["n_lists"] == 3 and figures["n_pairs"] == 1 + 2 + 1
    assert figures["pairwise_accuracy"] == 1.0 and figures["exact_order_accuracy"] == 1.0
    about = linear.describe()
    assert about["kind"] == "tfidf_logreg" and about["n_features"] > 0 and about["config"]["C"] == 4.0


def test_pairwise_ranker_learns_from_rank_lists_alone():
    linear = fit_pairwise_baseline(train_lists())
    assert linear.kind == "pairwise_ranker" and linear.n_train_pairs == 20 * 4
    assert linear.classifier.fit_intercept is False  # a score difference has no offset
    figures = evaluate_text_scorer(linear, TEST_LISTS)
    assert figures["pairwise_accuracy"] == 1.0


def test_labelled_baseline_refuses_one_label():
    with pytest.raises(ValueError, match="expected both 0 and 1"):
        fit_labelled_baseline(POSITIVE, [1] * 10)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def test_fit_baseline_chooses_its_kind_from_the_train_split(tmp_path: Path):
    prepared = tmp_path / "prepared"
    with pytest.raises(FileNotFoundError, match="run the prepare stage"):
        fit_baseline(prepared)
    # Rank-list input (human or imported lists): the labelled split is empty -> the pairwise ranker.
    _write_jsonl(prepared / "ranklists" / "train.jsonl", train_lists())
    (prepared / "splits").mkdir()
    (prepared / "splits" / "train.jsonl").write_text("", encoding="utf-8")
    assert fit_baseline(prepared).kind == "pairwise_ranker"
    with pytest.raises(FileNotFoundError, match="no labelled train texts"):
        fit_baseline(prepared, kind="tfidf_logreg")
    # A labelled corpus: texts with both labels -> the TF-IDF logistic regression.
    _write_jsonl(prepared / "splits" / "train.jsonl",
                 [{"text": t, "label": 1} for t in POSITIVE] + [{"text": t, "label": 0} for t in NEGATIVE])
    assert fit_baseline(prepared).kind == "tfidf_logreg"
    assert fit_baseline(prepared, kind="pairwise_ranker").kind == "pairwise_ranker"
    with pytest.raises(ValueError, match="expected one of"):
        fit_baseline(prepared, kind="svm")


class LexiconScorer:
    """Both interfaces of a RewardScorer: score = count('好') - count('差')."""

    def encode(self, texts):
        return [[ord(c) for c in t] for t in texts], [False] * len(texts)

    def score_encoded(self, seqs, batch_size=None):
        return torch.tensor([float(s.count(ord("好")) - s.count(ord("差"))) for s in seqs])

    def score_texts(self, texts):
        return self.score_encoded(self.encode(texts)[0])


def test_text_scorer_figures_equal_the_reward_model_evaluation():
    lists = TEST_LISTS + [{"id": "t4", "prompt": "", "tiers": [["差"], ["好"]]}]
    rm = evaluate_reward_model(LexiconScorer(), lists)["metrics"]
    any_scorer = evaluate_text_scorer(LexiconScorer(), lists)
    for key in ("n_lists", "n_pairs", "pairwise_accuracy", "exact_order_accuracy", "kendall_tau_b"):
        assert any_scorer[key] == pytest.approx(rm[key]), key
    assert any_scorer["pairwise_accuracy"] == pytest.approx(4 / 5)
