"""Training the RM: a behavioural check on a toy task, reproducibility, early stopping, bad input."""
import json

import pytest
import torch

from rlhf.config import from_dict
from rlhf.reward.config import RewardModelConfig
from rlhf.reward.evaluate import evaluate_reward_model
from rlhf.reward.model import load_reward_backbone, load_reward_model
from rlhf.reward.train import train_reward_model
from rlhf.reward.model import forward_scores
from rlhf.reward.train import plan_forward_chunks, score_batch
from rlhf.tokenizer import pad_right
from tests.toys import make_base, toy_lists


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return make_base(tmp_path_factory.mktemp("base"), n_positions=32)


def cfg(**kw):
    base = {"max_length": 32, "lists_per_batch": 8, "learning_rate": 3e-3, "warmup_ratio": 0.1, "epochs": 4,
            "eval_every": 8, "batch_size_eval": 64}
    return from_dict(RewardModelConfig, {**base, **kw}, prefix="reward_model")


def train(base_dir, out_dir, c, train_lists, dev_lists, seed=0, on_step=None):
    torch.manual_seed(seed)
    model, tok = load_reward_backbone(c, base_dir)
    summary = train_reward_model(c, model, tok, train_lists, dev_lists, out_dir, seed=seed, on_step=on_step,
                                 progress=False)
    return model, tok, summary


def test_trained_rm_ranks_good_above_bad(base_dir, tmp_path):
    steps = []
    _, _, summary = train(base_dir, tmp_path / "rm", cfg(), toy_lists(64, 1), toy_lists(16, 2),
                          on_step=lambda s, m: steps.append((s, m)))
    assert summary["steps"] == 32 and [s for s, _ in steps] == list(range(1, 33))
    assert {"train/loss", "train/pair_accuracy", "train/lr", "train/grad_norm"} <= set(steps[0][1])
    assert "dev/pairwise_accuracy" in steps[7][1] and "dev/pairwise_accuracy" not in steps[6][1]
    assert summary["best_dev_pairwise_accuracy"] >= 0.9
    assert steps[-1][1]["train/loss"] < steps[0][1]["train/loss"]
    stats = json.loads((tmp_path / "rm" / "reward_stats.json").read_text())
    assert set(stats) == {"mean", "std"} and stats["std"] > 0
    scorer = load_reward_model(tmp_path / "rm")
    good, bad = scorer.score_texts(["这个东西真的很好", "这个东西真的很差"]).tolist()
    assert good > bad
    ev = evaluate_reward_model(scorer, toy_lists(16, 3))
    assert ev["metrics"]["pairwise_accuracy"] >= 0.9 and ev["metrics"]["n_lists"] == 16


def test_same_seed_same_numbers(base_dir):
    c = cfg(epochs=1, eval_every=0)
    runs = []
    for _ in range(2):
        losses = []
        train(base_dir, None, c, toy_lists(32, 1), toy_lists(8, 2), on_step=lambda s, m: losses.append(m["train/loss"]))
        runs.append(losses)
    assert runs[0] == runs[1] and len(runs[0]) == 4


def test_early_stopping_and_best_checkpoint(base_dir):
    # a learning rate this small cannot change the dev accuracy: the first evaluation stays best
    c = cfg(learning_rate=1e-12, eval_every=1, early_stopping_patience=2)
    model, tok, summary = train(base_dir, None, c, toy_lists(64, 1), toy_lists(8, 2))
    assert summary["stopped_early"] and summary["steps"] == 3 and summary["best_step"] == 1
    assert len(summary["eval_history"]) == 3


def test_invalid_lists_and_truncation_are_counted(base_dir):
    bad = [{"id": "one", "tiers": [["好"]]}, {"id": "tied", "tiers": [["好", "差"]]}]
    long_text = "好" * 40
    lists = toy_lists(8, 1) + bad + [{"id": "long", "tiers": [[long_text], ["差"]]}]
    with pytest.raises(ValueError, match="'one'"):
        train(base_dir, None, cfg(epochs=1), lists, toy_lists(4, 2))
    _, _, summary = train(base_dir, None, cfg(epochs=1, on_invalid_list="skip"), lists, toy_lists(4, 2))
    assert summary["n_train_lists"] == 9 and summary["n_train_lists_skipped"] == 2
    assert summary["n_truncated_train_texts"] == 1


def test_without_dev_lists_keeps_last_weights(base_dir, tmp_path):
    _, _, summary = train(base_dir, tmp_path / "rm", cfg(epochs=1), toy_lists(16, 1), [])
    assert summary["steps"] == 2 and summary["n_dev_lists"] == 0
    assert (tmp_path / "rm" / "reward_stats.json").is_file()


def test_forward_chunks_respect_the_token_budget():
    lengths = [10, 3, 7, 10, 2, 30, 5]
    # longest first: [30] alone (over budget); [10, 10] = 20; [7, 5] = 14 (+3 would be 3*7 = 21); [3, 2]
    assert plan_forward_chunks(lengths, 20) == [[5], [0, 3], [2, 6], [1, 4]]
    assert plan_forward_chunks(lengths, 0) == [[5, 0, 3, 2, 6, 1, 4]]


def test_chunked_forward_gives_the_same_scores_and_gradients(base_dir):
    model, tok = load_reward_backbone(cfg(), base_dir)
    seqs = [[2] + [7 + (i * j) % 20 for j in range(n)] + [3] for i, n in enumerate([3, 20, 9, 14, 1, 25])]
    ids, mask = pad_right(seqs, tok.pad_token_id)
    whole = forward_scores(model, ids, mask)
    whole.square().sum().backward()
    grad_whole = model.score.weight.grad.clone()
    model.zero_grad()
    chunked, real, slots = score_batch(model, seqs, tok.pad_token_id, 40)
    chunked.square().sum().backward()
    assert torch.allclose(chunked, whole, atol=1e-5)
    assert torch.allclose(model.score.weight.grad, grad_whole, atol=1e-5)
    assert real == sum(len(s) for s in seqs) and slots < mask.numel()


def corpus(lists):
    return [{**rl, "source": "corpus"} for rl in lists]


def test_prefix_copies_cut_corpus_lists_only_and_are_seeded():
    from rlhf.reward.train import prefix_copies

    lists = corpus(toy_lists(200, 1)) + [{**rl, "source": "human"} for rl in toy_lists(50, 2)]
    copies = prefix_copies(lists, 0.5, 3, seed=0)
    assert copies == prefix_copies(lists, 0.5, 3, seed=0) and copies != prefix_copies(lists, 0.5, 3, seed=1)
    originals = {rl["id"]: rl for rl in lists}
    assert 60 <= len(copies) <= 120  # about half of the 200 corpus lists (a few cut to equal texts are left out)
    for copy in copies:
        original = originals[copy["id"].removesuffix("~prefix")]
        assert original["source"] == "corpus" and copy["id"].endswith("~prefix")
        for tier, cut_tier in zip(original["tiers"], copy["tiers"]):
            for text, cut in zip(tier, cut_tier):
                assert text.startswith(cut) and len(cut) >= min(3, len(text))
        texts = [t for tier in copy["tiers"] for t in tier]
        assert len(set(texts)) == len(texts)
    assert prefix_copies(lists, 0.0, 3, seed=0) == []
    assert prefix_copies([{**rl, "source": "human"} for rl in toy_lists(20, 1)], 1.0, 3, seed=0) == []


def test_prefix_augment_and_dropout_reach_training(base_dir):
    c = cfg(epochs=1, eval_every=0, prefix_augment=1.0, prefix_min_chars=2, dropout=0.1)
    model, _, summary = train(base_dir, None, c, corpus(toy_lists(32, 1)), toy_lists(8, 2))
    assert 0 < summary["n_prefix_augmented_lists"] <= 32
    assert summary["n_train_lists"] == 32 + summary["n_prefix_augmented_lists"]
    assert {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}
    with pytest.raises(Exception, match="reward_model.dropout"):
        cfg(dropout=1.5)


def test_prefix_copies_leave_malformed_lists_to_on_invalid_list():
    from rlhf.reward.train import prefix_copies

    bad = {"id": "bad", "source": "corpus", "tiers": "not tiers"}
    assert [c["id"] for c in prefix_copies([bad, *corpus(toy_lists(4, 1))], 1.0, 3, seed=0)] != []
    assert all(c["id"] != "bad~prefix" for c in prefix_copies([bad], 1.0, 3, seed=0))
