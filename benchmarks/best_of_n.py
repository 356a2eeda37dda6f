"""Best-of-n ceiling: how far selecting the base model's own samples by a scorer moves the evaluation.

Not a test. A diagnostic for the judge/diversity trade-off of ``evaluate_samples``: it draws
``--samples`` completions per evaluation prompt from the base model (the prompts, sampling
settings and judge of ``evaluate_samples``), scores them with the reward model(s) and the judge,
and for each pool size n (``--keep`` x 2, x 4, ... up to ``--samples``) keeps the ``--keep``
best-scored of the first n samples of every prompt. A top-k-of-n pick is a policy at most
``log(n / k)`` nats from the base (the KL of the base restricted to that share of its samples),
so each line is a point of the trade-off that involves no training:

- ``selector: reward_model``: what the reward model's preferences alone buy on the judge and
  distinct-2. If a PPO policy scores far above this at a similar KL, it got there by moving
  onto phrases the base rarely says (check ``reports/samples/samples.md``' bigram table).
- ``selector: judge``: the same picked by the judge itself, the ceiling any reward could reach
  by selection (not an independent evaluation: the judge grades its own picks).

``distinct_2_ratio`` compares the picks with the first ``--keep`` samples of every prompt (the
same number of completions, unselected). The first line also gives the rank correlation
(Spearman) of each reward model's scores with the judge's over all samples.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/best_of_n.py --project . --samples 256

``--reward-model`` (repeatable, ``NAME=DIR``) scores with other reward models too, e.g. one
trained with another seed, and adds their mean. Sampling is seeded: the same project gives the
same lines on CPU. 256 samples a prompt take about 1.5 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # also when imported from elsewhere (the tests)

from common import prompt_records, require_pipeline_outputs  # noqa: E402  benchmarks/common.py


def ranks(xs: list[float]) -> list[float]:
    """Ranks 0..n-1 with ties averaged."""
    order = sorted(range(len(xs)), key=xs.__getitem__)
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = ranks(a), ranks(b)
    if len(set(ra)) < 2 or len(set(rb)) < 2:
        return float("nan")
    return statistics.correlation(ra, rb)


def top_k_of_n(scores: list[float], n_prompts: int, per_prompt: int, n: int, k: int) -> list[int]:
    """Indices of the ``k`` best-scored of the first ``n`` samples of each prompt (prompt-major order;
    ties go to the earlier sample)."""
    picks = []
    for p in range(n_prompts):
        pool = range(p * per_prompt, p * per_prompt + n)
        picks += sorted(pool, key=lambda i: (-scores[i], i))[:k]
    return picks


def pool_sizes(keep: int, samples: int) -> list[int]:
    sizes, n = [], keep * 2
    while n < samples:
        sizes.append(n)
        n *= 2
    return sizes + [samples]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--project", type=Path, default=Path("."), help="a project where the pipeline has run")
    ap.add_argument("--samples", type=int, default=256, help="base samples drawn per evaluation prompt")
    ap.add_argument("--keep", type=int, default=None,
                    help="samples kept per prompt (default: eval.samples_per_prompt of params.yaml)")
    ap.add_argument("--reward-model", action="append", default=[], metavar="NAME=DIR",
                    help="another reward model to select with (besides PROJECT/models/reward_model)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM

    from rlhf.evaluation.samples import sample, select_eval_prompts
    from rlhf.evaluation.text_metrics import distinct_n, mean_length
    from rlhf.judge.loader import load_judge
    from rlhf.params import load_params
    from rlhf.reward.model import load_reward_model
    from rlhf.tokenizer import load_tokenizer

    project = args.project.resolve()
    require_pipeline_outputs(project, "params.yaml")
    reward_models = {"reward_model": project / "models/reward_model"}
    for spec in args.reward_model:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--reward-model {spec!r}: expected NAME=DIR")
        if name in reward_models or name in ("judge", "mean"):
            raise SystemExit(f"--reward-model {spec!r}: the name {name!r} is taken")
        if not (Path(path) / "config.json").is_file():
            raise SystemExit(f"--reward-model {spec!r}: {path} holds no saved model (config.json)")
        reward_models[name] = Path(path)
    params = load_params(project / "params.yaml")
    keep = args.keep or params.eval.samples_per_prompt
    if keep < 1 or args.samples < 2 * keep:
        raise SystemExit(f"--samples {args.samples} must be at least twice --keep {keep}")
    if args.threads:
        torch.set_num_threads(args.threads)

    prompts = [p["prompt"] for p in select_eval_prompts(prompt_records(project), params.eval.n_heldout_prompts)]
    tok = load_tokenizer(project / "models/base")
    base = AutoModelForCausalLM.from_pretrained(project / "models/base")
    batch = sample(base, tok, prompts, args.samples, params.eval, seed=params.seed)
    texts, completions = batch.texts, batch.completions
    judge = load_judge(params.eval.judge).score(texts)
    scores = {name: load_reward_model(path).score_texts(texts, normalize=True).tolist()
              for name, path in reward_models.items()}
    if len(scores) > 1:
        scores["mean"] = [statistics.fmean(s) for s in zip(*scores.values())]

    P, N = len(prompts), args.samples
    unselected = [i for p in range(P) for i in range(p * N, p * N + keep)]
    base_d2 = distinct_n([completions[i] for i in unselected], 2)
    print(json.dumps({"prompts": P, "samples_per_prompt": N, "keep": keep,
                      "judge_unselected": round(statistics.fmean(judge[i] for i in unselected), 4),
                      "distinct_2_unselected": round(base_d2, 4),
                      "spearman_with_judge": {k: round(spearman(s, judge), 4) for k, s in scores.items()}}),
          flush=True)
    for selector, s in [*scores.items(), ("judge", judge)]:
        for n in pool_sizes(keep, N):
            idx = top_k_of_n(s, P, N, n, keep)
            picked = [completions[i] for i in idx]
            print(json.dumps({
                "selector": selector, "n": n, "keep": keep, "kl_bound": round(math.log(n / keep), 3),
                "judge": round(statistics.fmean(judge[i] for i in idx), 4),
                "judge_positive_rate": round(statistics.fmean(judge[i] > params.eval.positive_threshold
                                                              for i in idx), 4),
                "distinct_2_ratio": round(distinct_n(picked, 2) / max(base_d2, 1e-9), 4),
                "mean_length": round(mean_length(picked), 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
