"""Naming a registry version: one grammar (``registry:NAME[@ALIAS|@VERSION]``) for the CLI and the labelling app."""
from __future__ import annotations

import pytest

from labeler.generation import resolve_model
from rlhf_cli.models import resolve_model_dir
from rlhf_ops import registry
from rlhf_ops.registry import ModelRef, parse_spec


@pytest.mark.parametrize("spec, ref", [
    ("registry:policy", ModelRef("policy", alias="champion")),
    ("registry:policy@champion", ModelRef("policy", alias="champion")),
    ("registry:reward-model@previous-champion", ModelRef("reward-model", alias="previous-champion")),
    ("registry:policy@3", ModelRef("policy", version="3")),
    ("registry:policy@v12", ModelRef("policy", version="12")),  # as `rlhf promote` takes a version
    ("registry:reward-model/3", ModelRef("reward-model", version="3")),  # the CLI's older form
])
def test_parse_spec(spec, ref):
    assert parse_spec(spec) == ref


@pytest.mark.parametrize("spec", ["registry:", "registry:@champion", "registry:policy@", "registry:policy@a@b",
                                  "registry:policy/champion", "registry:policy/", "registry:policy@3/4",
                                  "registry:po licy", "policy@champion", "registry:/3"])
def test_parse_spec_refuses_bad_specs_with_one_message(spec):
    with pytest.raises(ValueError) as e:
        parse_spec(spec)
    assert str(e.value) == f"model spec {spec!r}: expected {registry.SPEC_FORMS}"


def _register(client, name: str, exp: str) -> str:
    from mlflow.exceptions import MlflowException

    run_id = client.create_run(exp).info.run_id
    try:
        client.create_registered_model(name)
    except MlflowException:
        pass
    return str(client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id).version)


def test_resolve_spec_by_alias_and_version(store):
    client, exp = store
    v1, v2 = _register(client, "policy", exp), _register(client, "policy", exp)
    registry.promote("policy", v1, reason="first")
    client.set_registered_model_alias("policy", registry.CHALLENGER, v2)
    assert registry.resolve_spec("registry:policy").version == v1
    assert registry.resolve_spec("registry:policy@challenger").version == v2
    assert registry.resolve_spec("registry:policy@1").version == registry.resolve_spec("registry:policy/1").version == v1
    with pytest.raises(FileNotFoundError, match=r"registry:policy@7: the MLflow registry has no version 7 of 'policy' "
                                                r"\(registered: v2 \(challenger\), v1 \(champion\)\)"):
        registry.resolve_spec("registry:policy@7")
    with pytest.raises(FileNotFoundError, match="no alias 'nightly' of 'reward-model' \\(registered: none\\)"):
        registry.resolve_spec("registry:reward-model@nightly")


def test_cli_and_labeler_give_the_same_errors(store, tmp_path):
    """Both take the spec through the one parser: the same message for a malformed or a missing version."""
    for spec in ("registry:policy@", "registry:policy@4"):
        errors = []
        for resolve in (lambda: resolve_model_dir("policy", spec), lambda: resolve_model(spec, tmp_path)):
            with pytest.raises((ValueError, FileNotFoundError)) as e:
                resolve()
            errors.append((type(e.value), str(e.value)))
        assert errors[0] == errors[1]
        assert spec in errors[0][1]


def test_a_registered_reward_model_downloads_with_its_statistics(store, tmp_path):
    """reward_stats.json and the training config travel with the version: `rlhf score` from the registry
    normalises with them and keeps the training max_length."""
    import json

    import mlflow
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from rlhf.reward.model import load_reward_model, save_reward_model
    from rlhf.tokenizer import build_char_tokenizer

    tok = build_char_tokenizer(["好评差评质量不错"])
    torch.manual_seed(0)
    model = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tok), num_labels=1,
                                                     n_positions=32, pad_token_id=tok.pad_token_id))
    model_dir = save_reward_model(model, tok, tmp_path / "rm", stats={"mean": 0.5, "std": 2.0},
                                  config={"max_length": 24, "batch_size_eval": 8})
    with mlflow.start_run():
        version, new = registry.register_model_dir(model_dir, registry.REWARD_MODEL)
    assert new and version.tags[registry.SIDE_FILES_TAG] == "reward_stats.json,reward_model_config.json"
    local = registry.download(version, tmp_path / "downloaded")
    assert json.loads((local / "reward_stats.json").read_text()) == {"mean": 0.5, "std": 2.0}
    scorer = load_reward_model(local)
    assert scorer.stats == {"mean": 0.5, "std": 2.0} and scorer.max_length == 24
