"""PPO tuning sweep: train a policy with some ``params.yaml`` overrides, evaluate it as ``evaluate_samples`` does.

Not a test. It reuses a project where the pipeline has run (``models/base``,
``models/reward_model``, ``data/prepared/prompts.jsonl``), so one setting costs only its PPO run
plus ~30 s per evaluation point, and prints one JSON line per point with what the issue's targets
read: judge mean (all prompts, published, held-out), KL to the reference, distinct-2 of the
policy's completions as a ratio of the base model's, repetition rate, mean length, and the
perplexity of both models' completions under the base (fluency).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ppo_sweep.py --project . --name beta0.1 \\
        --set ppo.init_kl_coef=0.1 --set ppo.lr=5e-5 --eval-at 50,100,150

Overrides are dotted ``params.yaml`` keys with YAML values; they are validated like
``params.yaml`` itself. The policy is trained in memory (checkpoints under ``--out``); the
evaluation points do not change its training (the RNG state is restored after each), so the
last point equals a run without intermediate points. Lines are also appended to
``--out/results.jsonl``; with ``--rows`` every sample pair of a point (prompt, both completions,
judge and RM scores, KL) goes to ``--out/NAME-ITERATION.rows.json``. Two sweeps in parallel on
2 cores: ``--threads 1`` each.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import prompt_records, require_pipeline_outputs  # noqa: E402  benchmarks/common.py (this script's folder is on sys.path)


def override(raw: dict, dotted: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to the nested dict ``raw``."""
    key, sep, value = dotted.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set {dotted!r}: expected KEY=VALUE, e.g. ppo.lr=1e-4")
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SystemExit(f"--set {dotted!r}: {part} is not a section")
    node[leaf] = yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--project", type=Path, default=Path("."), help="a project where the pipeline has run")
    ap.add_argument("--params", type=Path, default=None, help="params file (default: PROJECT/params.yaml)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a params override")
    ap.add_argument("--eval-at", default="", help="comma-separated iterations to evaluate at (the last always)")
    ap.add_argument("--name", default="sweep", help="a label for the output lines")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "rlhf-ppo-sweep")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--rows", action="store_true",
                    help="also write every sample pair of each point to OUT/NAME-ITERATION.rows.json")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rlhf_ops.environment import openmp_defaults

    openmp_defaults()  # before torch: OpenMP threads wait as in the pipeline's stages
    import torch
    from transformers import AutoModelForCausalLM

    from rlhf.config import from_dict
    from rlhf.evaluation.samples import evaluate_policy, select_eval_prompts
    from rlhf.judge.loader import load_judge
    from rlhf.params import Params
    from rlhf.ppo.model import PolicyWithValueHead
    from rlhf.ppo.rewards import build_reward_fn
    from rlhf.ppo.trainer import train_ppo
    from rlhf.reward.model import load_reward_model
    from rlhf.seed import seed_everything
    from rlhf.tokenizer import load_tokenizer

    project = args.project.resolve()
    require_pipeline_outputs(project)
    raw = yaml.safe_load((args.params or project / "params.yaml").read_text(encoding="utf-8")) or {}
    for item in args.set:
        override(raw, item)
    params = from_dict(Params, raw)
    if args.threads:
        torch.set_num_threads(args.threads)

    records = prompt_records(project)
    train_prompts = [r["prompt"] for r in records if r.get("split") == "train"]
    eval_prompts = select_eval_prompts(records, params.eval.n_heldout_prompts)
    tok = load_tokenizer(project / "models/base")
    base = AutoModelForCausalLM.from_pretrained(project / "models/base")
    judge = load_judge(params.eval.judge)
    scorer = load_reward_model(project / "models/reward_model")
    seed_everything(params.seed)
    policy = PolicyWithValueHead.from_pretrained(project / "models/base", seed=params.seed)
    ref = AutoModelForCausalLM.from_pretrained(project / "models/base")
    reward_fn = build_reward_fn(params.ppo, tok, reward_model_dir=project / "models/reward_model",
                                judge_cfg=params.eval.judge)
    out = args.out / args.name
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # a sweep point always trains from the start
    eval_at = {int(x) for x in args.eval_at.split(",") if x.strip()} | {params.ppo.iterations}
    t0 = time.perf_counter()

    def evaluate(iteration: int, lm) -> None:
        state = torch.get_rng_state()
        result = evaluate_policy(base, lm, tok, eval_prompts, params.eval, judge, reward_scorer=scorer,
                                 seed=params.seed)
        torch.set_rng_state(state)
        groups = result["groups"]
        line = {"name": args.name, "set": args.set, "iteration": iteration,
                "seconds": round(time.perf_counter() - t0, 1),
                "judge": round(result["tuned"]["judge_score"], 4),
                "judge_base": round(result["base"]["judge_score"], 4),
                **{f"judge_{g}": round(v["tuned"]["judge_score"], 4) for g, v in groups.items()},
                "kl": round(result["kl"], 4),
                "distinct_2_ratio": round(result["tuned"]["distinct_2"] / max(result["base"]["distinct_2"], 1e-9), 4),
                "repetition_rate": round(result["tuned"]["repetition_rate"], 4),
                "mean_length": round(result["tuned"]["mean_length"], 2),
                "perplexity": round(result["tuned"]["perplexity"], 2),
                "perplexity_base": round(result["base"]["perplexity"], 2)}
        print(json.dumps(line), flush=True)
        if args.rows:  # prompt, base and tuned completions, their judge / RM scores and KL
            (args.out / f"{args.name}-{iteration}.rows.json").write_text(
                json.dumps(result["rows"], ensure_ascii=False, indent=0), encoding="utf-8")
        with (args.out / "results.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def on_iteration(iteration: int, metrics: dict) -> None:
        if iteration in eval_at and iteration < params.ppo.iterations:
            evaluate(iteration, policy.lm)

    train_ppo(params.ppo, policy, ref, tok, reward_fn, train_prompts, out / "policy", seed=params.seed,
              on_iteration=on_iteration, progress=False, checkpoint_dir=out / "checkpoints")
    evaluate(params.ppo.iterations, AutoModelForCausalLM.from_pretrained(out / "policy"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
