"""Benchmark: PPO (ours), GRPO, RLOO and DPO (TRL) from one base model, on one budget, by one evaluation.

Not a test. On a project where the pipeline has run (``models/base``, ``models/reward_model``,
``data/prepared/prompts.jsonl``, ``params.yaml``) it trains each algorithm of ``--algorithms`` from the
same base model on the same train prompts with the same budget of sampled episodes (prompt + sampled
completion; ``--episodes``, default the project's ``ppo.iterations x ppo.batch_size``), each with its
own ``params.yaml`` section otherwise unchanged and the project's ``seed``:

* ``ppo``: ``ppo.iterations = episodes / ppo.batch_size`` (:func:`rlhf.ppo.trainer.train_ppo`, as the
  ``ppo`` stage calls it; no checkpoints, no resume);
* ``grpo`` / ``rloo``: ``steps = episodes / <algo>.batch_size`` (:func:`rlhf.algorithms.online.train_grpo`,
  :func:`~rlhf.algorithms.online.train_rloo`);
* ``dpo``: its episodes are the completions sampled from the base to build the preference pairs
  (``pair_source: sampled``, whatever the project's setting: rank lists cost no sampling): K =
  ``max(dpo.samples_per_prompt, ceil(episodes / train prompts))`` completions for each of
  ``episodes // K`` train prompts (a seeded subset), ranked by the reward; then ``dpo.steps``
  optimiser steps on those pairs (:func:`rlhf.algorithms.dpo.preference_pairs`, ``train_dpo``).

A step count is rounded to the nearest whole step; the episodes each algorithm really sampled are in
the table. The reward is the project's reward model, normalised as each section says
(:func:`rlhf.ppo.rewards.build_reward_fn`); ``--reward-source judge`` trains every algorithm (and ranks
DPO's pairs) on the evaluation judge instead: the ceiling of each, labelled so in the output.

Then each policy, and the base, is evaluated by ``evaluate_samples``'s own code
(:func:`rlhf.evaluation.samples.evaluate_policy` on :func:`~rlhf.evaluation.samples.select_eval_prompts`,
with the ``eval`` section, judge, reward model, seed and device the stage uses): judge mean (all
prompts and per group), distinct-2 as a ratio of the base's, KL to the base (nats/sample), reward-model
score, and the training wall time (policy loading included, reward loading not; DPO: pair sampling
+ training) with episodes/s. ``goal`` marks the issue's target: judge >= 0.90, distinct-2 >= 0.7 x base,
KL <= eval.max_kl.
One table on stdout, JSON to ``--json``; the policies stay in ``--out``.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/algorithms.py --project /tmp/defrun   # default models: ~10-15 min
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/algorithms.py --project /tmp/defrun --reward-source judge \\
        --json reports/benchmarks/algorithms-judge.json
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/algorithms.py --project DIR --quick   # a check: ~20 s (tiny profile)

``--quick``: 2 PPO batches of episodes, at most 2 DPO steps, and an evaluation of 2 samples on the
published + 4 held-out prompts (not comparable with the stage's figures). Times on 2 idle CPU cores
for the default models (3200 episodes each; estimated from timed steps, 2-3x as long when other jobs
share the cores): PPO ~2 min, GRPO and RLOO ~1.5-3 min each, DPO ~1.5 min (sampling 3200 completions +
100 steps), evaluation ~40 s per policy. The tiny profile (tests/smoke/params.yaml) takes ~25 s.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# benchmarks/common.py (this script's folder is on sys.path)
from common import prompt_records, require_pipeline_outputs  # noqa: E402

ALGORITHMS = ("ppo", "grpo", "rloo", "dpo")
GOAL = {"judge": 0.90, "distinct_2_ratio": 0.7}  # issue #16's goal for the comparison (not a gate)


def steps_for(episodes: int, batch_size: int) -> int:
    """The whole number of steps of ``batch_size`` episodes nearest to ``episodes`` (at least 1)."""
    return max(1, int(episodes / batch_size + 0.5))


def dpo_budget(episodes: int, n_prompts: int, samples_per_prompt: int) -> tuple[int, int]:
    """``(K, prompts)``: K completions for each of ``prompts`` train prompts, K * prompts <= ``episodes``,
    K at least the project's ``samples_per_prompt`` and no more prompts than the pool has."""
    k = max(samples_per_prompt, math.ceil(episodes / max(n_prompts, 1)), 2)
    return k, max(1, min(n_prompts, episodes // k))


def train_one(name: str, params, project: Path, out_dir: Path, prompts: list[str], episodes: int, tok,
              reward_source: str | None, device: str) -> dict:
    """Train ``name`` from the project's base on ``prompts`` with ``episodes`` sampled episodes; save to
    ``out_dir``. Returns what was run (settings, the library's summary, wall seconds)."""
    from rlhf.ppo.rewards import build_reward_fn
    from rlhf.seed import seed_everything

    base_dir, rm_dir = project / "models/base", project / "models/reward_model"
    seed = params.seed
    source = {} if reward_source is None else {"reward_source": reward_source}

    def reward_fn(cfg, accel_device=None):
        fn = build_reward_fn(cfg, tok, reward_model_dir=rm_dir, judge_cfg=params.eval.judge)
        target = accel_device or device
        if hasattr(fn, "scorer") and str(target) != "cpu":
            fn.scorer.to(target)
        return fn

    # settings and the reward function first: loading the reward model or the judge is not training time
    if name == "ppo":
        from transformers import AutoModelForCausalLM

        from rlhf.compute import stage_accelerator
        from rlhf.ppo.model import PolicyWithValueHead
        from rlhf.ppo.trainer import train_ppo

        cfg = dataclasses.replace(params.ppo, iterations=steps_for(episodes, params.ppo.batch_size), resume=False,
                                  checkpoint_every=0, sample_every=0, **source)
        accelerator = stage_accelerator(params.compute, "ppo")
        fn = reward_fn(cfg, accelerator.device if accelerator is not None else None)
        seed_everything(seed)
        start = time.perf_counter()
        policy = PolicyWithValueHead.from_pretrained(base_dir, seed=seed)
        ref = AutoModelForCausalLM.from_pretrained(base_dir)
        summary = train_ppo(cfg, policy, ref, tok, fn, prompts, out_dir, seed=seed, progress=False,
                            checkpoint_dir=out_dir.parent / f"{out_dir.name}-checkpoints", accelerator=accelerator)
        summary.pop("history", None)
        run = {"iterations": cfg.iterations, "batch_size": cfg.batch_size, "episodes": cfg.iterations * cfg.batch_size,
               "reward_source": cfg.reward_source}
    elif name in ("grpo", "rloo"):
        from rlhf.algorithms.online import train_grpo, train_rloo

        section = getattr(params, name)
        cfg = dataclasses.replace(section, steps=steps_for(episodes, section.batch_size), **source)
        train = train_grpo if name == "grpo" else train_rloo
        fn = reward_fn(cfg)
        seed_everything(seed)
        start = time.perf_counter()
        summary = train(cfg, base_dir, prompts, fn, out_dir, seed=seed, device=device,
                        mixed_precision=params.compute.mixed_precision)
        run = {"steps": cfg.steps, "batch_size": cfg.batch_size, "num_generations": cfg.num_generations,
               "episodes": cfg.steps * cfg.batch_size, "reward_source": cfg.reward_source}
    elif name == "dpo":
        from rlhf.algorithms.dpo import preference_pairs, train_dpo

        k, n = dpo_budget(episodes, len(prompts), params.dpo.samples_per_prompt)
        cfg = dataclasses.replace(params.dpo, pair_source="sampled", samples_per_prompt=k, **source)
        subset = random.Random(seed).sample(prompts, n)
        fn = reward_fn(cfg)
        seed_everything(seed)
        start = time.perf_counter()
        pairs, info = preference_pairs(cfg, base_dir, prompts=subset, reward_fn=fn, seed=seed)
        pairs_s = time.perf_counter() - start
        summary = {**info, **train_dpo(cfg, base_dir, pairs, out_dir, seed=seed, device=device,
                                       mixed_precision=params.compute.mixed_precision), "pairs_seconds": pairs_s}
        run = {"samples_per_prompt": k, "prompts": n, "episodes": k * n, "steps": cfg.steps,
               "batch_size": cfg.batch_size, "pairs": len(pairs), "reward_source": cfg.reward_source,
               "pair_source": "sampled"}
    else:
        raise SystemExit(f"--algorithms: unknown {name!r}; expected some of {', '.join(ALGORITHMS)}")
    seconds = time.perf_counter() - start
    return {**run, "train_seconds": seconds, "episodes_per_second": run["episodes"] / max(seconds, 1e-9),
            "summary": {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool)) or v is None}}


def figures(result: dict, key: str) -> dict:
    """The headline figures of ``result[key]`` (``'base'`` or ``'tuned'``) of an evaluation."""
    base, own = result["base"], result[key]
    out = {"judge": own["judge_score"], "judge_positive_rate": own["judge_positive_rate"],
           "distinct_2": own["distinct_2"], "distinct_2_ratio": own["distinct_2"] / max(base["distinct_2"], 1e-9),
           "kl": result["kl"] if key == "tuned" else 0.0, "rm_score": own.get("rm_score"),
           "repetition_rate": own["repetition_rate"], "mean_length": own["mean_length"],
           "perplexity": own["perplexity"]}
    out.update({f"judge_{g}": v[key]["judge_score"] for g, v in result["groups"].items()})
    return out


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: dict[str, dict], max_kl: float) -> str:
    head = (f"{'algorithm':<10} {'episodes':>8} {'train s':>8} {'eps/s':>7} {'judge':>6} {'d-2 x base':>10} "
            f"{'KL nats':>8} {'RM score':>8}  goal")
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        f = r["figures"]
        goal = "-" if name == "base" else ("yes" if r["goal"] else "no")
        lines.append(f"{name:<10} {_fmt(r.get('episodes'), 'd'):>8} {_fmt(r.get('train_seconds'), '.1f'):>8} "
                     f"{_fmt(r.get('episodes_per_second'), '.1f'):>7} {f['judge']:>6.3f} "
                     f"{f['distinct_2_ratio']:>10.2f} "
                     f"{f['kl']:>8.2f} {_fmt(f['rm_score'], '.3f'):>8}  {goal}")
    lines.append(f"goal: judge >= {GOAL['judge']:.2f}, distinct-2 >= {GOAL['distinct_2_ratio']} x base, "
                 f"KL <= eval.max_kl = {max_kl:g}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--project", type=Path, default=ROOT, help="a project where the pipeline has run (default: "
                    "this checkout)")
    ap.add_argument("--algorithms", default=",".join(ALGORITHMS), help="comma-separated, in training order")
    ap.add_argument("--episodes", type=int, default=0, help="sampled episodes per algorithm (default: the "
                    "project's ppo.iterations x ppo.batch_size)")
    ap.add_argument("--reward-source", choices=("reward_model", "judge"), default="reward_model",
                    help="'judge': train every algorithm on the evaluation judge (the ceiling of each)")
    ap.add_argument("--quick", action="store_true", help="a check, not a measurement: 2 PPO batches of episodes "
                    "(unless --episodes), <= 2 DPO steps, evaluation of 2 samples on published + 4 held-out prompts")
    ap.add_argument("--out", type=Path, default=None, help="where the policies are written (default: a new temp dir)")
    ap.add_argument("--json", type=Path, default=ROOT / "reports" / "benchmarks" / "algorithms.json")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rlhf_ops.environment import openmp_defaults

    openmp_defaults()  # before torch: OpenMP threads wait as in the pipeline's stages
    import torch
    from transformers import AutoModelForCausalLM

    from rlhf.compute import check_mixed_precision, resolve_device
    from rlhf.evaluation.samples import evaluate_policy, select_eval_prompts
    from rlhf.judge.loader import load_judge
    from rlhf.params import load_params
    from rlhf.reward.model import load_reward_model
    from rlhf.seed import seed_everything
    from rlhf.tokenizer import load_tokenizer

    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars, one per model load
    datasets.disable_progress_bars()  # TRL's dataset preparation bars

    project = args.project.resolve()
    require_pipeline_outputs(project)
    names = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    bad = [a for a in names if a not in ALGORITHMS]
    if bad or not names or len(set(names)) != len(names):
        raise SystemExit(f"--algorithms {args.algorithms!r}: expected distinct names among {', '.join(ALGORITHMS)}")
    params = load_params(project / "params.yaml")
    if args.threads:
        torch.set_num_threads(args.threads)
    episodes = args.episodes or (2 * params.ppo.batch_size if args.quick else
                                 params.ppo.iterations * params.ppo.batch_size)
    if args.quick:
        params.dpo = dataclasses.replace(params.dpo, steps=min(params.dpo.steps, 2))
        params.eval = dataclasses.replace(params.eval, samples_per_prompt=min(params.eval.samples_per_prompt, 2),
                                          n_heldout_prompts=min(params.eval.n_heldout_prompts, 4))
    reward_source = args.reward_source if args.reward_source == "judge" else None  # None: each section's own
    label = ("judge (ceiling: trained on the evaluation judge)" if reward_source
             else "reward model (each section's setting)")
    out_root = args.out or Path(tempfile.mkdtemp(prefix="rlhf-algbench-"))
    out_root.mkdir(parents=True, exist_ok=True)

    device = resolve_device(params.compute.device)
    check_mixed_precision(params.compute.mixed_precision, device)
    records = prompt_records(project)
    train_prompts = [r["prompt"] for r in records if r.get("split") == "train"]
    tok = load_tokenizer(project / "models/base")
    print(f"[bench] {project}: {', '.join(names)} on {len(train_prompts)} train prompts, {episodes} episodes each, "
          f"reward: {label}, seed {params.seed}, device {device}; policies in {out_root}", flush=True)

    # imported before any clock starts: the first TRL algorithm would otherwise pay for importing TRL
    import rlhf.ppo.trainer  # noqa: F401
    if set(names) - {"ppo"}:
        import rlhf.algorithms.dpo  # noqa: F401
        import rlhf.algorithms.online  # noqa: F401
        from trl import DPOTrainer, GRPOTrainer, RLOOTrainer  # noqa: F401

    runs: dict[str, dict] = {}
    for name in names:
        print(f"[bench] training {name} ...", flush=True)
        runs[name] = train_one(name, params, project, out_root / name, train_prompts, episodes, tok, reward_source,
                               device)
        r = runs[name]
        how = (f"K={r['samples_per_prompt']} completions x {r['prompts']} prompts -> {r['pairs']} pairs, "
               f"{r['steps']} steps" if name == "dpo" else
               f"{r.get('iterations', r.get('steps'))} x {r['batch_size']}")
        print(f"[bench] {name}: {r['episodes']} episodes ({how}) in {r['train_seconds']:.1f} s", flush=True)

    # evaluate_samples' evaluation: same prompts, seed, sampler, judge, reward model and device
    print("[bench] evaluating (evaluate_samples' evaluation) ...", flush=True)
    seed_everything(params.seed)
    eval_prompts = select_eval_prompts(records, params.eval.n_heldout_prompts)
    base = AutoModelForCausalLM.from_pretrained(project / "models/base").to(device)
    judge = load_judge(params.eval.judge, device=device)
    scorer = load_reward_model(project / "models/reward_model", device=device)
    rows: dict[str, dict] = {}
    evaluations: dict[str, dict] = {}
    base_cache: dict = {}  # the base's samples and scores, once for every policy (as evaluate_samples does)
    for name in names:
        t0 = time.perf_counter()
        policy = AutoModelForCausalLM.from_pretrained(out_root / name).to(base.device)
        result = evaluate_policy(base, policy, tok, eval_prompts, params.eval, judge, reward_scorer=scorer,
                                 seed=params.seed, base_cache=base_cache)
        del policy
        result.pop("rows")
        evaluations[name] = result
        f = figures(result, "tuned")
        goal = (f["judge"] >= GOAL["judge"] and f["distinct_2_ratio"] >= GOAL["distinct_2_ratio"]
                and f["kl"] <= params.eval.max_kl)
        rows[name] = {**{k: v for k, v in runs[name].items() if k != "summary"}, "figures": f, "goal": goal,
                      "eval_seconds": time.perf_counter() - t0, "training": runs[name]["summary"]}
        print(f"[bench] {name}: judge {f['judge']:.3f}, distinct-2 x{f['distinct_2_ratio']:.2f}, KL {f['kl']:.2f}",
              flush=True)
    first = evaluations[names[0]]
    rows = {"base": {"figures": figures(first, "base")}, **rows}
    # the base is sampled with the same seed in each evaluation: its figures must agree
    base_judges = {round(e["base"]["judge_score"], 6) for e in evaluations.values()}

    report = {
        "project": str(project), "reward_source": args.reward_source, "reward_label": label, "quick": args.quick,
        "episodes_target": episodes, "seed": params.seed, "device": device, "threads": torch.get_num_threads(),
        "train_prompts": len(train_prompts),
        "eval": {"prompts": first["n_prompts"], "samples": first["n_samples"], "eval_key": first["eval_key"],
                 "samples_per_prompt": params.eval.samples_per_prompt, "max_kl": params.eval.max_kl,
                 "base_consistent": len(base_judges) == 1},
        "notes": {"dpo": "episodes = completions sampled from the base to build the pairs (pair_source 'sampled'); "
                         "its optimiser steps (dpo.steps) are not episodes",
                  "train_seconds": "wall time of the training call, policy loading included, reward model / judge "
                                   "loading excluded (DPO: sampling and ranking the pairs + training)"},
        "goal": {**GOAL, "max_kl": params.eval.max_kl},
        "policies": str(out_root), "results": rows,
        "evaluations": {k: {kk: vv for kk, vv in v.items() if kk != "rows"} for k, v in evaluations.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")

    print(f"\nPolicy algorithms on {project} ({'QUICK CHECK, ' if args.quick else ''}reward: {label}); "
          f"{episodes} episodes each (target), seed {params.seed}; evaluation: {first['n_prompts']} prompts x "
          f"{params.eval.samples_per_prompt} samples (evaluate_samples' code)")
    print(table(rows, params.eval.max_kl))
    if "dpo" in runs:
        d = runs["dpo"]
        print(f"dpo: episodes = completions sampled from the base for its pairs: K={d['samples_per_prompt']} for "
              f"each of {d['prompts']} train prompts = {d['episodes']}, ranked by the "
              f"{'judge' if d['reward_source'] == 'judge' else 'reward model'} -> {d['pairs']} pairs, "
              f"then {d['steps']} DPO steps of {d['batch_size']} pairs")
    if len(base_judges) != 1:
        print(f"warning: the base's judge mean differed between evaluations ({sorted(base_judges)}); "
              "the first is shown")
    print(f"wrote {args.json}; policies in {out_root}")
    return report


if __name__ == "__main__":
    main()
