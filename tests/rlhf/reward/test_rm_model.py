"""Loading backbones (missing paths, pad tokens, encoders), scoring, saving and loading the RM."""
import json

import pytest
import torch
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from rlhf.config import ConfigError, from_dict
from rlhf.reward.config import RewardModelConfig
from rlhf.reward.model import (RewardScorer, encode_texts, load_reward_backbone, load_reward_model, right_align,
                               save_reward_model)
from rlhf.tokenizer import build_char_tokenizer, pad_left

TEXTS = ["这个东西很好", "质量太差了", "还行吧", "好", "非常满意，下次还来买这个东西"]


def save_tiny_gpt2(path, n_positions=64):
    tok = build_char_tokenizer(TEXTS + ["这部电影不错"])
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=len(tok), n_positions=n_positions,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return tok


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("base")
    save_tiny_gpt2(path)
    return path


def cfg(**kw):
    return from_dict(RewardModelConfig, {"max_length": 32, **kw}, prefix="reward_model")


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="reward_model.scheduler"):
        cfg(scheduler="exponential")
    with pytest.raises(ConfigError, match="unknown key reward_model.lr"):
        cfg(lr=1e-3)
    with pytest.raises(ConfigError, match="reward_model.warmup_ratio"):
        cfg(warmup_ratio=1.0)


def test_missing_backbones_name_path_and_what_is_accepted(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'base' means the base LM in .*nowhere.*accepted"):
        load_reward_backbone(cfg(), tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"'/no/such/model' does not exist; accepted: 'base'"):
        load_reward_backbone(cfg(backbone="/no/such/model"), tmp_path)
    with pytest.raises(FileNotFoundError, match=r"cannot load 'not-a-cached-model-id'.*accepted"):
        load_reward_backbone(cfg(backbone="not-a-cached-model-id"), tmp_path)


def test_load_base_sets_pad_and_checks_max_length(base_dir):
    model, tok = load_reward_backbone(cfg(), base_dir)
    assert type(model).__name__ == "GPT2ForSequenceClassification"
    assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id == 0
    with pytest.raises(ConfigError, match="reward_model.max_length: got 100; expected at most 64"):
        load_reward_backbone(cfg(max_length=100), base_dir)


def test_tokenizer_without_pad_pads_with_eos(tmp_path):
    tok = save_tiny_gpt2(tmp_path)
    tok.pad_token = None
    tok.save_pretrained(tmp_path)
    model, tok2 = load_reward_backbone(cfg(backbone=str(tmp_path)), tmp_path)
    assert tok2.pad_token == "[SEP]" and model.config.pad_token_id == tok2.eos_token_id


def test_tokenizer_without_pad_or_eos_gets_a_new_pad_and_resized_embeddings(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    vocab = {"<unk>": 0, "good": 1, "bad": 2, "very": 3}
    raw = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>")
    tok.save_pretrained(tmp_path)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=4, n_positions=16)).save_pretrained(tmp_path)
    model, tok2 = load_reward_backbone(cfg(backbone=str(tmp_path), max_length=16), tmp_path)
    assert tok2.pad_token == "[PAD]" and tok2.pad_token_id == 4
    assert model.get_input_embeddings().num_embeddings == 5 and model.config.pad_token_id == 4
    scores = RewardScorer(model, tok2, max_length=16).score_texts(["very good", "bad"])
    assert scores.shape == (2,) and torch.isfinite(scores).all()


def test_scores_do_not_depend_on_padding_or_batching(base_dir):
    model, tok = load_reward_backbone(cfg(), base_dir)
    scorer = RewardScorer(model, tok, max_length=32, batch_size=2)
    batched = scorer.score_texts(TEXTS)
    single = torch.cat([scorer.score_texts([t]) for t in TEXTS])
    assert torch.allclose(batched, single, atol=1e-5)
    # PPO hands left-padded ids: the same scores
    seqs, _ = scorer.encode(TEXTS)
    ids, mask = pad_left(seqs, tok.pad_token_id)
    assert torch.allclose(scorer.score_ids(ids, mask), batched, atol=1e-5)
    assert not torch.allclose(batched, batched[0].expand(len(TEXTS)))  # the scores do differ


def test_right_align_moves_real_tokens_first():
    ids = torch.tensor([[0, 0, 5, 6], [7, 8, 9, 0]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0]])
    got_ids, got_mask = right_align(ids, mask, pad_id=0)
    assert got_ids.tolist() == [[5, 6, 0], [7, 8, 9]] and got_mask.tolist() == [[1, 1, 0], [1, 1, 1]]


def test_encode_texts_truncates_keeping_bos_eos_and_flags(base_dir):
    _, tok = load_reward_backbone(cfg(), base_dir)
    seqs, truncated = encode_texts(tok, ["好", "非常满意，下次还来买这个东西"], max_length=6)
    assert truncated == [False, True]
    assert seqs[0] == [tok.bos_token_id, tok.convert_tokens_to_ids("好"), tok.eos_token_id]
    assert len(seqs[1]) == 6 and seqs[1][0] == tok.bos_token_id and seqs[1][-1] == tok.eos_token_id


def test_save_and_load_round_trip(base_dir, tmp_path):
    model, tok = load_reward_backbone(cfg(), base_dir)
    before = RewardScorer(model, tok, max_length=32).score_texts(TEXTS)
    save_reward_model(model, tok, tmp_path / "rm", stats={"mean": 0.5, "std": 2.0}, config={"max_length": 20})
    assert json.loads((tmp_path / "rm" / "reward_stats.json").read_text()) == {"mean": 0.5, "std": 2.0}
    scorer = load_reward_model(tmp_path / "rm")
    assert scorer.max_length == 20
    assert torch.allclose(scorer.score_texts(TEXTS), before, atol=1e-5)
    assert torch.allclose(scorer.score_texts(TEXTS, normalize=True), (before - 0.5) / 2.0, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_reward_model(tmp_path / "missing")
    with pytest.raises(ValueError, match="finite"):
        save_reward_model(model, tok, tmp_path / "rm2", stats={"mean": float("nan"), "std": 1.0})


def test_one_rule_for_the_stats_std_at_load_normalize_and_save(base_dir, tmp_path):
    model, tok = load_reward_backbone(cfg(), base_dir)
    save_reward_model(model, tok, tmp_path / "rm", stats={"mean": 0.5, "std": 2.0})
    stats_file = tmp_path / "rm" / "reward_stats.json"
    for std in (0.0, -2.0, "nan", None):
        stats_file.write_text(json.dumps({"mean": 0.5, "std": std}).replace('"nan"', "NaN"))
        with pytest.raises(ValueError, match=rf"{stats_file}: .*expected"):  # at load time, naming the file
            load_reward_model(tmp_path / "rm")
    with pytest.raises(ValueError, match=r"std = 0.0; expected a positive finite number"):
        RewardScorer(model, tok, stats={"mean": 0.0, "std": 0.0})
    scorer = RewardScorer(model, tok, stats={"mean": 0.0, "std": 2.0}, stats_source="my_stats.json")
    assert scorer.normalize(torch.tensor([4.0])).tolist() == [2.0]
    scorer.stats["std"] = 0.0  # no silent floor: the same error when normalising
    with pytest.raises(ValueError, match=r"my_stats.json: std = 0.0"):
        scorer.normalize(torch.tensor([4.0]))
    with pytest.raises(ValueError, match="no reward_stats.json statistics"):
        RewardScorer(model, tok).normalize(torch.tensor([4.0]))
    with pytest.raises(ValueError, match="positive finite"):
        save_reward_model(model, tok, tmp_path / "rm3", stats={"mean": 0.0, "std": 0.0})


def test_score_ids_refuses_sequences_longer_than_max_length(base_dir):
    model, tok = load_reward_backbone(cfg(), base_dir)
    scorer = RewardScorer(model, tok, max_length=8)
    seqs, truncated = scorer.encode(["非常满意，下次还来买这个东西"])  # texts are cut to max_length ...
    assert truncated == [True] and len(seqs[0]) == 8
    ids, mask = pad_left([[tok.bos_token_id] + [tok.unk_token_id] * 8 + [tok.eos_token_id]], tok.pad_token_id)
    with pytest.raises(ValueError, match=r"a sequence of 10 tokens; expected at most max_length=8"):  # ... ids refused
        scorer.score_ids(ids, mask)
    assert RewardScorer(model, tok).max_length == 64  # by default: the model's positions


def test_encoder_backbone_with_pooled_head(tmp_path):
    tok = build_char_tokenizer(TEXTS)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model, tok2 = load_reward_backbone(cfg(backbone=str(tmp_path)), tmp_path)
    assert type(model).__name__ == "BertForSequenceClassification"
    scorer = RewardScorer(model, tok2, max_length=32, batch_size=2)
    batched = scorer.score_texts(TEXTS)
    single = torch.cat([scorer.score_texts([t]) for t in TEXTS])
    assert torch.allclose(batched, single, atol=1e-5)
    seqs, _ = scorer.encode(TEXTS)
    ids, mask = pad_left(seqs, tok2.pad_token_id)  # left padding would pool a pad token: right-aligned first
    assert torch.allclose(scorer.score_ids(ids, mask), batched, atol=1e-5)
