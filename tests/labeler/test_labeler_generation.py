"""Candidate generation: a real (tiny, untrained) GPT-2 loaded lazily, seeded, deduplicated; model specs."""
from __future__ import annotations

import pytest

from labeler.generation import ModelGenerator, SamplingParams, distinct_candidates, resolve_model
from labeler.prompts import load_prompt_pool


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A save_pretrained GPT-2 of 1 layer on a char vocabulary: built here, nothing downloaded."""
    from rlhf.config import from_dict
    from rlhf.models.base_lm import build_gpt2
    from rlhf.models.config import BaseConfig
    from rlhf.tokenizer import build_char_tokenizer

    root = tmp_path_factory.mktemp("project")
    tok = build_char_tokenizer(["这部电影很好看，推荐！质量差，不会再买。物流快，包装好。"])
    cfg = from_dict(BaseConfig, {"n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 64, "max_length": 32})
    model = build_gpt2(cfg, tok)
    directory = root / "models" / "base"
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return root


def test_model_generator_is_lazy_seeded_and_continues_the_prompt(tiny_model_dir):
    generator = ModelGenerator("base", tiny_model_dir)
    assert generator._model is None and generator.model_name is None  # nothing loaded before the first call
    sampling = SamplingParams(k=3, seed=11, max_new_tokens=6, temperature=1.0, top_k=0, top_p=1.0)
    texts = generator("这部电影", sampling)
    assert len(texts) == 3 and all(t.startswith("这部电影") and len(t) > len("这部电影") for t in texts)
    assert generator.model_name == "models/base" and len(generator.model_version) == 12
    assert generator("这部电影", sampling) == texts  # same seed, same candidates
    assert generator("这部电影", sampling.with_seed(12)) != texts
    filtered = generator("这部电影", SamplingParams(k=2, seed=3, max_new_tokens=4, top_k=1))
    assert filtered[0] == filtered[1]  # top_k=1 is greedy: the sampling params reach generate()


def test_prompt_too_long_for_the_model_is_a_clear_error(tiny_model_dir):
    generator = ModelGenerator(str(tiny_model_dir / "models" / "base"), tiny_model_dir)
    with pytest.raises(ValueError, match=r"prompt of 61 tokens \+ max_new_tokens=16 exceeds the model's 64 positions"):
        generator("好" * 60, SamplingParams(k=2, max_new_tokens=16))


def test_candidates_come_from_the_shared_sampler(tiny_model_dir):
    """The app's candidates are what PPO's sampler draws for the same seed (rlhf.sampling)."""
    from rlhf.sampling import sample_completions

    generator = ModelGenerator("base", tiny_model_dir)
    sampling = SamplingParams(k=3, seed=5, max_new_tokens=6, temperature=0.8, top_k=10, top_p=0.9)
    texts = generator("物流", sampling)
    completions = sample_completions(generator._model, generator._tok, ["物流"], n=3, max_new_tokens=6, seed=5,
                                     temperature=0.8, top_k=10, top_p=0.9)[0]
    assert texts == ["物流" + c for c in completions]


def test_resolve_model_specs(tiny_model_dir, tmp_path):
    base = resolve_model("base", tiny_model_dir)
    assert base.directory == tiny_model_dir / "models" / "base" and base.name == "models/base"
    assert resolve_model(str(base.directory), tmp_path).version == base.version  # version = content hash
    assert resolve_model("auto", tiny_model_dir).directory == base.directory  # no policy yet: the base model
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        resolve_model("policy", tiny_model_dir)
    with pytest.raises(FileNotFoundError, match="--model auto"):
        resolve_model("auto", tmp_path)


def test_distinct_candidates_drops_repeats_and_draws_more():
    calls = []

    def repetitive(prompt, sampling):
        calls.append(sampling.seed)
        return [f"{prompt} {sampling.seed % 7}", f"{prompt} {sampling.seed % 7}", f"{prompt}\tend", ""]

    texts = distinct_candidates(repetitive, "p", SamplingParams(k=4, seed=5))
    assert texts == ["p 5", "p end", f"p {(5 + 1_000_003) % 7}", f"p {(5 + 2 * 1_000_003) % 7}"]
    assert calls == [5, 5 + 1_000_003, 5 + 2 * 1_000_003]
    assert distinct_candidates(repetitive, "p", SamplingParams(k=4, seed=5)) == texts  # seeded


def test_prompt_pool(tmp_path):
    pool = tmp_path / "prompts.jsonl"
    pool.write_text('{"prompt": "a", "source": "published", "split": "train"}\n'
                    '{"prompt": "b", "source": "heldout", "split": "test"}\n\n'
                    '{"prompt": "a", "source": "published", "split": "test"}\n', encoding="utf-8")
    assert load_prompt_pool(pool)[0] == ["a"]
    assert load_prompt_pool(pool, "test")[0] == ["b", "a"]
    assert load_prompt_pool(pool, "all")[0] == ["a", "b"]
    prompts, note = load_prompt_pool(tmp_path / "missing.jsonl")
    assert "这部电影很" in prompts and "not found" in note
    pool.write_text("{broken\n")
    with pytest.raises(ValueError, match=r"prompts.jsonl:1"):
        load_prompt_pool(pool)


def test_the_app_serves_model_candidates_and_stores_the_version(tiny_model_dir, store):
    from starlette.testclient import TestClient

    from labeler.app import LabelerConfig, create_app

    generator = ModelGenerator("base", tiny_model_dir)
    app = create_app(store, generator, ["物流"], LabelerConfig(sampling=SamplingParams(k=3, max_new_tokens=5)))
    for _ in range(2):  # the generation thread comes back after the app restarts
        with TestClient(app, base_url="http://localhost") as client:
            task = client.post("/api/tasks", json={"annotator": "a", "seed": 4}).json()
            assert client.post("/api/labels", json={"annotator": "a", "task_id": task["task_id"],
                                                    "tiers": [[0], [1, 2]]}).status_code == 201
    assert task["model"] == "models/base" and task["model_version"] == generator.model_version
    assert [c["text"] for c in task["candidates"]] == distinct_candidates(generator, "物流", SamplingParams(
        k=3, seed=4, max_new_tokens=5))
    assert [l.model_version for l in store.labels()] == [generator.model_version] * 2
