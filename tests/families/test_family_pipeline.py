"""Every stage, the registry and ``rlhf generate`` / ``rlhf score`` with tiny checkpoints of real families.

One prepared tiny-profile project; each test points ``base.model`` (and ``reward_model.backbone``)
at a checkpoint made offline (``tests/families/checkpoints.py``) and runs the stages in DVC order,
then the CLI. The runs share the project's MLflow registry, so later families meet a champion
of another family (another tokenizer) in the promotion gates.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml

from tests.families.conftest import cli_step, run_steps

pytestmark = [pytest.mark.slow, pytest.mark.extended]

# policy.algorithms is [ppo]: each train_policy item only writes the placeholder evaluate_samples reads
STAGES = ["base", "train_reward_model", "evaluate_reward_model", "ppo",
          *("\x1f".join(["train_policy", "--algorithm", alg]) for alg in ("grpo", "rloo", "dpo")), "evaluate_samples"]
PROMPT = "这部电影很"


def set_params(project: Path, **values: str) -> None:
    """Set ``section.key`` values (given as ``section__key``) in the project's params.yaml."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in values.items():
        section, key = dotted.split("__")
        params[section][key] = value
    path.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")


def metrics(project: Path, stage: str) -> dict:
    return json.loads((project / "metrics" / f"{stage}.json").read_text(encoding="utf-8"))


def finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def check_run(project: Path, out: str, base_dir: Path) -> None:
    """What every family's run must leave behind, whatever its tokenizer."""
    from transformers import AutoConfig, AutoTokenizer

    from rlhf.tokenizer import load_tokenizer

    assert finite(metrics(project, "base")["dev_perplexity"])
    rm = metrics(project, "evaluate_reward_model")
    assert 0.0 <= rm["pairwise_accuracy"] <= 1.0 and rm["registry"]["version"] >= 1
    ppo = metrics(project, "ppo")
    assert ppo["iterations"] == 3 and finite(ppo["final_score"], ppo["final_kl"])
    samples = metrics(project, "evaluate_samples")
    assert finite(samples["kl"], samples["tuned"]["judge_score"], samples["base"]["perplexity"])
    assert samples["promotion"]["version"] is not None  # the policy was registered and went through the gate

    # base, policy and the checkpoint share one vocabulary; the saved configs know the tokenizer's EOS
    tok = load_tokenizer(project / "models/base")
    assert len(tok) == len(AutoTokenizer.from_pretrained(base_dir))
    for name in ("base", "policy"):
        saved = load_tokenizer(project / "models" / name)
        assert saved.get_vocab() == tok.get_vocab()
        assert AutoConfig.from_pretrained(project / "models" / name).eos_token_id == tok.eos_token_id

    # rlhf generate (this run's policy, from the registry): two completions of each prompt, one prompt empty
    generated, scored, scored_file = out.split("@@ step rlhf")[1:4]
    assert "registry policy v" in generated and generated.count(PROMPT) >= 2, generated
    # rlhf score (this run's reward model, from the registry): one finite reward per text
    assert "registry reward-model v" in scored
    assert len(re.findall(r"│ (?:很好看|太差了) +│ +-?\d+\.\d+ ", scored)) == 2, scored
    # rlhf score --file: the accuracy on the test rank lists, from models/reward_model
    assert "models/reward_model" in scored_file and re.search(r"│ +[01]\.\d{4} +│", scored_file), scored_file


def family_steps() -> list[str]:
    return STAGES + [
        cli_step("generate", "--prompt", PROMPT, "--prompt", "", "-n", "2", "--max-new-tokens", "6",
                 "--model", "registry:policy@{policy_version}"),
        cli_step("score", "很好看", "太差了", "--model", "registry:reward-model@{rm_version}"),
        cli_step("score", "--file", "data/prepared/ranklists/test.jsonl", "--model", "models/reward_model")]


def test_gpt2_with_a_bert_char_tokenizer_uer_layout(family_project, family_checkpoints):
    """``uer/gpt2-chinese-*``: BERT vocab.txt only, [CLS] start, [SEP] end, GPT-2 ids 50256 in the config."""
    set_params(family_project, base__model=str(family_checkpoints["gpt2_chinese"]), reward_model__backbone="base")
    out = run_steps(family_project, family_steps()).stdout
    print("\n".join(l for l in out.splitlines() if l.startswith("@@ done")))
    check_run(family_project, out, family_checkpoints["gpt2_chinese"])
    from rlhf.tokenizer import load_tokenizer

    tok = load_tokenizer(family_project / "models/base")
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("[CLS]", "[SEP]", "[PAD]")


def test_qwen2_with_a_byte_level_bpe_tokenizer_without_bos_or_pad(family_project, family_checkpoints):
    """Qwen2 architecture, byte-level BPE, no BOS (prompts start with the EOS), no pad (pads with EOS); own RM."""
    set_params(family_project, base__model=str(family_checkpoints["qwen2"]), reward_model__backbone="base")
    out = run_steps(family_project, family_steps()).stdout
    print("\n".join(l for l in out.splitlines() if l.startswith("@@ done")))
    check_run(family_project, out, family_checkpoints["qwen2"])
    from rlhf.tokenizer import load_tokenizer

    tok = load_tokenizer(family_project / "models/base")
    assert tok.bos_token is None and tok.pad_token == tok.eos_token == "<|endoftext|>"
    rm_config = json.loads((family_project / "models/reward_model/config.json").read_text(encoding="utf-8"))
    assert rm_config["architectures"] == ["Qwen2ForSequenceClassification"]


def test_llama_policy_with_a_bert_encoder_reward_model(family_project, family_checkpoints):
    """Llama + byte-level BPE policy (pad token of its own); a BERT encoder with its own vocabulary as the RM:
    PPO's reward and the evaluation's RM scores go through decode and re-tokenisation."""
    set_params(family_project, base__model=str(family_checkpoints["llama"]),
               reward_model__backbone=str(family_checkpoints["bert"]))
    out = run_steps(family_project, family_steps()).stdout
    print("\n".join(l for l in out.splitlines() if l.startswith("@@ done")))
    check_run(family_project, out, family_checkpoints["llama"])
    rm_config = json.loads((family_project / "models/reward_model/config.json").read_text(encoding="utf-8"))
    assert rm_config["architectures"] == ["BertForSequenceClassification"]
    from rlhf.tokenizer import load_tokenizer

    assert load_tokenizer(family_project / "models/reward_model").get_vocab() != \
        load_tokenizer(family_project / "models/policy").get_vocab()
