"""Text normalisation and corpus filtering (length bounds, duplicates, conflicting labels)."""
from rlhf.data.clean import LabelledText, filter_corpus, normalize_text


def test_whitespace_runs_collapse_and_no_tab_or_newline_survives():
    assert normalize_text("  很\t\t好 \r\n 真的\u3000很好\x00!\n") == "很 好 真的 很好 !"


def test_nfc_keeps_full_width_chinese_punctuation():
    assert normalize_text("刚收到货，感觉！") == "刚收到货，感觉！"
    assert normalize_text("刚收到货，感觉！", "NFKC") == "刚收到货,感觉!"
    assert normalize_text("e\u0301") == "\u00e9"  # NFC composes
    assert normalize_text("ｉＰｈｏｎｅ", "NFKC") == "iPhone"
    assert normalize_text("e\u0301", "none") == "e\u0301"


def test_filter_corpus_counts_each_reason_and_keeps_first_occurrence():
    texts = [LabelledText(t, label) for t, label in [
        ("好", 1),            # too short (min 2)
        ("很好很好", 1),
        ("太长了太长了", 0),   # too long (max 5)
        ("很好很好", 1),       # duplicate
        ("还行吧", 1),
        ("还行吧", 0),         # duplicate with the other label: conflicting, both go
        ("很差", 0),
        ("还行吧", 1),         # another duplicate
    ]]
    kept, counts = filter_corpus(texts, min_chars=2, max_chars=5)
    assert kept == [LabelledText("很好很好", 1), LabelledText("很差", 0)]
    assert counts == {"too_short": 1, "too_long": 1, "duplicate": 3, "conflicting_label": 1}
    # every input record is accounted for: kept + filtered
    assert len(kept) + sum(counts.values()) == len(texts)
