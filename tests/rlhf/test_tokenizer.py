"""The char tokenizer: full vocabulary kept, lossless round trip of seen text, one id convention."""
from __future__ import annotations

from transformers import AutoTokenizer

from rlhf.tokenizer import build_char_tokenizer, decode, encode, encode_batch, load_tokenizer, pad_left, pad_right

TEXTS = ["刚收到货，感觉质量很好！", "这部电影很差，浪费时间。", "说实话，真的很abc 123"]


def test_vocab_is_complete_and_specials_fixed():
    tok = build_char_tokenizer(TEXTS)
    chars = {c for t in TEXTS for c in t if not c.isspace()}
    # every character + 5 specials + "##x" continuations of ASCII letters/digits
    assert len(tok) == 5 + len(chars) + sum(1 for c in chars if c.isascii() and c.isalnum())
    assert (tok.pad_token_id, tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2, 3)
    assert tok.unk_token_id not in encode(tok, TEXTS[0])


def test_vocab_size_keeps_most_frequent_chars():
    tok = build_char_tokenizer(["好好好好差差坏"], vocab_size=5 + 2)
    assert tok.convert_tokens_to_ids("坏") == tok.unk_token_id
    assert tok.convert_tokens_to_ids("好") != tok.unk_token_id


def test_round_trip_through_save_pretrained(tmp_path):
    tok = build_char_tokenizer(TEXTS)
    tok.save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    plain = AutoTokenizer.from_pretrained(tmp_path)
    assert len(again) == len(plain) == len(tok)
    for text in TEXTS:
        ids = encode(again, text)
        assert ids == encode(tok, text)
        assert ids[0] == again.bos_token_id and ids[-1] == again.eos_token_id
        assert decode(again, ids) == text.replace("abc 123", "abc 123")
    assert again.padding_side == "left"
    assert "token_type_ids" not in again("好")


def test_prompt_has_no_eos_and_truncation_keeps_bos_eos():
    tok = build_char_tokenizer(TEXTS)
    assert encode(tok, "这部电影很", eos=False)[-1] != tok.eos_token_id
    ids = encode(tok, TEXTS[0], max_length=5)
    assert len(ids) == 5 and ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert encode_batch(tok, TEXTS, max_length=5) == [encode(tok, t, max_length=5) for t in TEXTS]


def test_unknown_chars_stay_visible_when_decoded():
    tok = build_char_tokenizer(["好"])
    assert decode(tok, encode(tok, "好X")) == "好\ufffd"


def test_padding_helpers():
    ids, mask = pad_left([[5, 6], [7]], 0)
    assert ids.tolist() == [[5, 6], [0, 7]] and mask.tolist() == [[1, 1], [0, 1]]
    ids, mask = pad_right([[5, 6], [7]], 0)
    assert ids.tolist() == [[5, 6], [7, 0]] and mask.tolist() == [[1, 1], [1, 0]]
