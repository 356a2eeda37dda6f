"""Issue 18, case 8: the command line's edges end in one line that says what to do, never a traceback.

The commands run in this process on tiny save_pretrained models (``conftest.py``), with the
project environment set-up stubbed out (it would point MLflow and Prefect at this repository).
"""
from __future__ import annotations

import io
import logging

import pytest



@pytest.fixture
def rlhf(rlhf_in_tmp):
    """``rlhf(*argv) -> (exit status, stdout, stderr)`` run in an empty project directory (tests/conftest.py)."""
    return rlhf_in_tmp


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Loading weights")]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def test_generate_with_a_prompt_longer_than_the_model(rlhf, tiny_models):
    code, _, err = rlhf("generate", "--model", str(tiny_models["policy"]), "--prompt", "这" * 40, "-n", "1")
    assert code == 1
    line = one_line_error(err)
    assert "41 tokens" in line and "32 positions" in line and "max_new_tokens=16" in line


def test_score_with_a_causal_lm_is_not_a_reward_model(rlhf, tiny_models):
    code, _, err = rlhf("score", "--model", str(tiny_models["policy"]), "这部电影很好看")
    assert code == 1
    line = one_line_error(err)
    assert "not a reward model" in line and "GPT2LMHeadModel" in line


def test_generate_with_a_reward_model_is_refused(rlhf, tiny_models):
    code, out, err = rlhf("generate", "--model", str(tiny_models["reward_model"]), "--prompt", "这部", "-n", "1")
    assert code == 1 and "这部" not in out  # nothing sampled
    line = one_line_error(err)
    assert "not a causal language model" in line and "GPT2ForSequenceClassification" in line


def test_the_right_models_still_work(rlhf, tiny_models):
    code, out, err = rlhf("score", "--model", str(tiny_models["reward_model"]), "这部电影很好看")
    assert code == 0, err
    code, out, err = rlhf("generate", "--model", str(tiny_models["policy"]), "--prompt", "这部", "-n", "2",
                          "--max-new-tokens", "4")
    assert code == 0, err
    assert out.count("这部") >= 2


@pytest.mark.parametrize("flag, value, expected", [
    ("--top-p", "2", "0 < top_p <= 1"), ("--top-p", "0", "0 < top_p <= 1"), ("--temperature", "0", "> 0"),
    ("--temperature", "-1", "> 0"), ("--top-k", "-1", ">= 0"), ("-n", "0", ">= 1"),
    ("--max-new-tokens", "0", ">= 1"), ("--top-p", "x", "not a number"), ("-n", "1.5", "not an integer"),
])
def test_sampling_arguments_are_range_checked(rlhf, flag, value, expected):
    code, _, err = rlhf("generate", "--prompt", "这部", flag, value)
    assert code == 2
    assert f"argument {flag}" in err and expected in err, err


def test_score_file_errors_speak_of_the_file_not_of_prepare(rlhf, tiny_models, tmp_path):
    bad = tmp_path / "lists.jsonl"
    bad.write_text('{"tiers": [["好"], ["差"]]}\n{"tiers": [["好"]\n', encoding="utf-8")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    for path, what in ((bad, "lists.jsonl:2: invalid JSON"), (empty, "empty.jsonl: empty file")):
        code, _, err = rlhf("score", "--model", str(tiny_models["reward_model"]), "--file", str(path))
        assert code == 1
        line = one_line_error(err)
        assert what in line
        assert "prepare" not in line and "data.on_error" not in line


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_generate_prints_no_attention_mask_warning(rlhf, tiny_models):
    """Rows that ended feed the pad token to the next step: transformers warns about padding without a mask
    (it dropped the all-ones mask itself). The warning is wrong for us and must not reach the terminal."""
    logging.Logger.warning_once.cache_clear()  # transformers warns once per process
    collect = Collect()
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addHandler(collect)
    try:
        code, _, err = rlhf("generate", "--model", str(tiny_models["policy"]), "--prompt", "这部", "-n", "20",
                            "--max-new-tokens", "28")
    finally:
        logger.removeHandler(collect)
    assert code == 0, err
    assert not [m for m in collect.messages if "attention_mask" in m], collect.messages
    assert "attention_mask" not in err


def test_the_warning_is_raised_without_the_filter(tiny_models):
    """The previous test's conditions do produce the warning in a bare ``generate`` (so that test proves something)."""
    import torch
    from transformers import AutoModelForCausalLM

    from rlhf.tokenizer import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_models["policy"])
    tok = load_tokenizer(tiny_models["policy"])
    logging.Logger.warning_once.cache_clear()
    collect = Collect()
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addHandler(collect)
    filters, logger.filters = logger.filters, []
    try:
        torch.manual_seed(0)
        ids = torch.tensor([[tok.bos_token_id, 7, 8]] * 20)
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, max_new_tokens=28,
                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, top_k=0)
    finally:
        logger.filters = filters
        logger.removeHandler(collect)
    assert [m for m in collect.messages if "attention_mask" in m]


# --- rlhf compare in a narrow terminal -------------------------------------------------------------
def version(n: int, aliases: list[str], champion: bool = False) -> dict:
    """A row of ``rlhf_ops.compare.summarize`` (its JSON form), with realistic lengths."""
    return {"name": "policy", "version": str(n), "aliases": aliases, "created": None, "run_id": "0123456789abcdef",
            "registering_stage": "ppo", "training_run_id": "fedcba9876543210",
            "metrics": {"judge_score": 0.9012, "kl": 1.2345, "distinct_2": 0.5432}, "params": {},
            "params_diff": {} if champion else {"ppo.lr": {"value": "1e-05", "champion": "2e-05"},
                                                "ppo.iterations": {"value": "20", "champion": "10"}},
            "data_hash": "abcdef0123456789", "data_deps": {}, "eval_data_hash": "99887766aabbccdd",
            "git_commit": "1234567890abcdef", "git_dirty": True, "dvc_exp_name": "exp-12345" if n == 2 else None,
            "promotion": {}}


SUMMARY = {"name": "policy", "champion": "1",
           "versions": [version(3, []), version(2, ["challenger"]), version(1, ["champion"], champion=True)]}


def render(width: int) -> str:
    from rich.console import Console

    from rlhf_cli.ops import render_comparison

    out = io.StringIO()
    render_comparison(SUMMARY, Console(width=width, file=out, force_terminal=False, color_system=None))
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 60])
def test_compare_in_a_narrow_terminal_cuts_no_cell(width):
    text = render(width)
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= width
    for whole in ("0.9012", "1.2345", "0.5432", "challenger", "champion", "ppo.iterations=20", "(champion 10)",
                  "abcdef01", "99887766", "12345678*", "01234567", "fedcba98", "exp-12345", "v3", "v2", "v1"):
        assert whole in text, (whole, text)


def test_compare_in_a_wide_terminal_is_one_table():
    text = render(200)
    assert "…" not in text
    header = next(line for line in text.splitlines() if "judge score" in line)
    assert "version" in header and "git commit" in header  # one row per version, one column per field


# --- rlhf run: a stage's clean error is the last word, not Prefect's tracebacks ----------------------
FAILING_STAGE = r'''
import sys
import flows.dvc as dvc

ERROR = "error: params.yaml: ppo.lr: got -1e-05; expected a number in (0, inf)"

def repro(root, stage, *, force=False, echo=None, tail_lines=40):
    output = f"{ERROR}\nERROR: failed to reproduce '{stage}': failed to run: python -m tasks.{stage}, exited with 1"
    sys.stdout.buffer.write(output.encode() + b"\n")  # streamed as flows.dvc.repro streams the stage's output
    sys.stdout.flush()
    return 1, output

dvc.status = lambda root, stage: {stage: [{"changed params": {"ppo.lr": "modified"}}]}
dvc.repro = repro
from rlhf_cli.main import main
sys.exit(main(["run", "--stage", "ppo"]))
'''


@pytest.mark.slow  # Prefect's ephemeral server starts (15-40 s on 2 busy cores); no stage runs
def test_a_failed_stage_ends_the_run_with_its_message(tmp_path):
    """The stage's own output, then one line; Prefect records the task and the flow as Failed, without tracebacks."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.smoke.ops_helpers import clean_env

    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "dvc.yaml").write_text("stages:\n  prepare:\n    cmd: 'true'\n  ppo:\n    cmd: 'true'\n")
    (tmp_path / "params.yaml").write_text((repo / "tests" / "smoke" / "params.yaml").read_text())
    env = clean_env(PYTHONPATH=str(repo), PREFECT_HOME=str(tmp_path / ".prefect"))
    proc = subprocess.run([sys.executable, "-c", FAILING_STAGE], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out, out
    assert "NoneType: None" not in out, out
    [verdict] = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert verdict == ("error: pipeline failed: stage 'ppo' failed (dvc repro exit 1): params.yaml: ppo.lr: got "
                       "-1e-05; expected a number in (0, inf)"), out
    assert out.count("failed to reproduce") == 1, out  # the stage's output is not repeated
    assert "Flow run" in out and "Finished in state Failed" in out  # Prefect records the run as failed
