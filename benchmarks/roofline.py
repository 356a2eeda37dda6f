"""Roofline of PPO on this machine: how close each phase comes to the measured fp32 matmul rate.

Not a test. Three parts, all with the same torch thread count as ``benchmarks/ppo.py`` (2):

1. the matmul rate of ``torch.mm`` (fp32) for the shapes the default model uses (``rows x 256 @
   256 x 768 / 1024 / 256 / vocab`` and ``rows x 1024 @ 1024 x 256`` at the row counts of
   generation, of a PPO minibatch and of a scoring pass) and of a big reference shape
   (``1536 x 256 @ 256 x 1024``), measured before and after the PPO timing;
2. the FLOPs of each PPO phase at the settings of ``benchmarks/ppo.py`` (64 episodes, 16 new
   tokens, 4 epochs x 4 minibatches; the same models: the base GPT-2 bootstrapped the way that
   script does, 4 layers, 256 wide, ~4k vocabulary, and its reward model), counted on one
   iteration of the trainer's own :func:`rlhf.ppo.trainer.ppo_step` by recording every matmul
   (and attention) it dispatches, forward and backward; and of one reward-model and one base
   pretraining step at their default sizes;
3. the seconds of each phase, from the trainer's own ``time/<phase>`` metrics over a
   ``train_ppo`` run (median over the iterations after the first), and of those two steps.

The table gives per phase: GFLOP, seconds, achieved GFLOP/s, its fraction of the big-shape rate
and of the "same-shape" rate (the phase's matmul FLOPs over the time ``torch.mm`` takes for
exactly the shapes it dispatched, measured alone: 100% means the phase costs no more than its
matmuls would on their own). Writes ``reports/benchmarks/roofline.json``.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/roofline.py   # ~2 min on 2 cores

Other processes share the cores: rates are medians of repeated timings, and the big-shape rate
is measured before and after (both printed; the fractions use their median).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rlhf_ops.environment import openmp_defaults  # noqa: E402

openmp_defaults()  # before torch starts OpenMP: its threads wait as in the pipeline's stages

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count  # noqa: E402

from common import base_model_dir  # noqa: E402  (benchmarks/common.py)
from rlhf.ppo.phases import PHASES, Phases  # noqa: E402

BIG = (1536, 256, 1024)
aten = torch.ops.aten


# --------------------------------------------------------------------------- matmul rates


def time_call(fn, min_seconds: float = 0.04, repeats: int = 5) -> float:
    """Median seconds of one ``fn()`` call over ``repeats`` batches of calls lasting >= ``min_seconds``."""
    fn()
    n, t0 = 1, time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-6)
    n = max(1, int(min_seconds / one))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


class MatmulRates:
    """Measured fp32 rate of ``a (m x k) @ b (k x n)`` (``batch`` of them), cached by shape."""

    def __init__(self):
        self.seconds: dict[tuple, float] = {}

    def time(self, m: int, k: int, n: int, batch: int = 1) -> float:
        key = (batch, m, k, n)
        if key not in self.seconds:
            gen = torch.Generator().manual_seed(0)
            if batch == 1:
                a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
                out = torch.empty(m, n)
                self.seconds[key] = time_call(lambda: torch.mm(a, b, out=out))
            else:
                a, b = torch.randn(batch, m, k, generator=gen), torch.randn(batch, k, n, generator=gen)
                out = torch.empty(batch, m, n)
                self.seconds[key] = time_call(lambda: torch.bmm(a, b, out=out))
        return self.seconds[key]

    def gflops(self, m: int, k: int, n: int, batch: int = 1) -> float:
        return 2 * batch * m * k * n / self.time(m, k, n, batch) / 1e9


# --------------------------------------------------------------------------- FLOP counting


class MatmulRecorder(TorchDispatchMode):
    """Records the shape of every matmul (and CPU attention) dispatched while active, forward and backward."""

    def __init__(self):
        super().__init__()
        self.mm: Counter = Counter()  # (batch, m, k, n) -> calls
        self.attention_flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = getattr(func, "overloadpacket", None)
        if packet in (aten.mm, aten.addmm):
            a, b = (args[0], args[1]) if packet is aten.mm else (args[1], args[2])
            self.mm[(1, a.shape[0], a.shape[1], b.shape[1])] += 1
        elif packet in (aten.bmm, aten.baddbmm):
            a, b = (args[0], args[1]) if packet is aten.bmm else (args[1], args[2])
            self.mm[(a.shape[0], a.shape[1], a.shape[2], b.shape[2])] += 1
        elif packet is aten._scaled_dot_product_flash_attention_for_cpu:
            self.attention_flops += sdpa_flop_count(args[0].shape, args[1].shape, args[2].shape)
        elif packet is aten._scaled_dot_product_flash_attention_for_cpu_backward:
            self.attention_flops += sdpa_backward_flop_count(args[0].shape, args[1].shape, args[2].shape,
                                                             args[3].shape)
        return out

    @property
    def matmul_flops(self) -> int:
        return sum(2 * b * m * k * n * calls for (b, m, k, n), calls in self.mm.items())

    @property
    def flops(self) -> int:
        return self.matmul_flops + self.attention_flops

    def same_shape_seconds(self, rates: MatmulRates) -> float:
        """Seconds ``torch.mm`` / ``bmm`` alone take for the recorded matmuls."""
        return sum(rates.time(m, k, n, b) * calls for (b, m, k, n), calls in self.mm.items())


class CountingPhases(Phases):
    """:class:`Phases` that also records each phase's matmuls (slower: use it for counting, not timing)."""

    def __init__(self):
        super().__init__()
        self.recorders: dict[str, MatmulRecorder] = {}

    @contextmanager
    def __call__(self, name: str):
        recorder = self.recorders.setdefault(name, MatmulRecorder())
        with super().__call__(name), recorder:
            yield


# --------------------------------------------------------------------------- PPO


def load_models(base_dir: Path, rm_dir: Path):
    from transformers import AutoModelForCausalLM

    from rlhf.ppo.model import PolicyWithValueHead
    from rlhf.ppo.rewards import RewardModelReward
    from rlhf.tokenizer import load_tokenizer

    tok = load_tokenizer(base_dir)
    policy = PolicyWithValueHead.from_pretrained(base_dir, seed=0)
    ref = AutoModelForCausalLM.from_pretrained(base_dir)
    reward = RewardModelReward.from_pretrained(rm_dir, tok, normalization="none")
    return tok, policy, ref, reward


def count_ppo(cfg, base_dir: Path, rm_dir: Path, prompts: list[str]) -> dict[str, MatmulRecorder]:
    """Matmuls of each phase of one ``ppo_step`` (the first iteration of a run, set up as ``train_ppo`` does)."""
    from rlhf.ppo.model import use_fast_gelu
    from rlhf.ppo.trainer import PromptSampler, ppo_step
    from rlhf.seed import seed_everything

    tok, policy, ref, reward = load_models(base_dir, rm_dir)
    seed_everything(0)
    ref.eval().requires_grad_(False)
    policy.eval()
    use_fast_gelu(policy)
    use_fast_gelu(ref)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay,
                                  fused=True)
    batch_prompts = [prompts[i] for i in PromptSampler(len(prompts), 0).sample(cfg.batch_size)]
    phases = CountingPhases()
    metrics, batch, _, _ = ppo_step(cfg, policy, ref, tok, reward, optimizer, cfg.init_kl_coef, batch_prompts,
                                    phases=phases)
    real = int(batch.attention_mask.sum())
    print(f"[roofline] counted one iteration: {len(batch)} episodes, width {batch.query_responses.shape[1]} "
          f"(prompt {batch.prompt_width}), {real} real tokens of {batch.attention_mask.numel()} slots", flush=True)
    return phases.recorders


def time_ppo(cfg, base_dir: Path, rm_dir: Path, prompts: list[str], out_dir: Path) -> list[dict]:
    """Every iteration's metrics of a ``train_ppo`` run (the trainer's own ``time/<phase>`` among them)."""
    from rlhf.ppo.trainer import train_ppo

    tok, policy, ref, reward = load_models(base_dir, rm_dir)
    history: list[dict] = []
    stamps = [time.perf_counter()]

    def on_iteration(i, m):
        stamps.append(time.perf_counter())
        history.append({**m, "iteration_s": stamps[-1] - stamps[-2]})

    train_ppo(cfg, policy, ref, tok, reward, prompts, out_dir, seed=0, on_iteration=on_iteration, progress=False)
    return history


# --------------------------------------------------------------------------- RM and base steps


def rm_step(base_dir: Path, texts: list[str], repeats: int) -> tuple[MatmulRecorder, float]:
    """One reward-model optimiser step at the defaults (8 rank lists x 4 texts, chunked forwards): matmuls, seconds."""
    from transformers import GPT2ForSequenceClassification

    from rlhf.reward.config import RewardModelConfig
    from rlhf.reward.train import BatchScores, make_optimizer
    from rlhf.tokenizer import encode_batch, load_tokenizer

    cfg = RewardModelConfig()
    tok = load_tokenizer(base_dir)
    model = GPT2ForSequenceClassification.from_pretrained(str(base_dir), num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    model.train()
    seqs = encode_batch(tok, texts[:cfg.lists_per_batch * 4], max_length=cfg.max_length)
    forward = BatchScores(model, tok.pad_token_id, cfg.forward_max_tokens)
    opt = make_optimizer(model, cfg)

    def step():
        opt.zero_grad(set_to_none=True)
        scores = forward(seqs).view(-1, 2)  # pairs (0, 1), (2, 3), ...: a stand-in for the rank loss
        loss = -torch.nn.functional.logsigmoid(scores[:, 0] - scores[:, 1]).mean()
        loss.backward()
        opt.step()

    recorder = MatmulRecorder()
    with recorder:
        step()
    return recorder, statistics.median(time_call(step, 0.0, 1) for _ in range(repeats))


def base_step(base_dir: Path, texts: list[str], repeats: int) -> tuple[MatmulRecorder, float]:
    """One base-LM optimiser step at the defaults (32 texts of <= 64 tokens, right-padded): matmuls, seconds."""
    from transformers import AutoModelForCausalLM

    from rlhf.models.base_lm import lm_loss
    from rlhf.models.config import BaseConfig
    from rlhf.tokenizer import encode_batch, load_tokenizer, pad_right

    cfg = BaseConfig()
    tok = load_tokenizer(base_dir)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    model.train()
    ids, mask = pad_right(encode_batch(tok, texts[:cfg.batch_size], max_length=cfg.max_length), tok.pad_token_id)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    def step():
        opt.zero_grad(set_to_none=True)
        lm_loss(model, ids, mask).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()

    recorder = MatmulRecorder()
    with recorder:
        step()
    return recorder, statistics.median(time_call(step, 0.0, 1) for _ in range(repeats))


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    import ppo as bench  # benchmarks/ppo.py: its prompts, models and PPO settings

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (benchmarks/ppo.py: 2)")
    ap.add_argument("--iterations", type=int, default=5, help="timed PPO iterations (the first is not counted)")
    ap.add_argument("--step-repeats", type=int, default=7, help="timed RM and base steps")
    ap.add_argument("--base-dir", default=str(ROOT / "models" / "base"))
    ap.add_argument("--rm-dir", default=str(ROOT / "models" / "reward_model"))
    ap.add_argument("--base-steps", type=int, default=300)
    ap.add_argument("--rm-steps", type=int, default=200)
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "rlhf-benchmarks"))
    ap.add_argument("--out", default=str(ROOT / "reports" / "benchmarks" / "roofline.json"))
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    pos, neg = bench.read_corpus()
    train_prompts, _ = bench.make_prompts(pos, neg)
    base_dir = base_model_dir(args.base_dir, args.cache, args.base_steps, pos + neg)
    rm_dir = bench.reward_model_dir(args, base_dir, pos, neg)
    cfg = bench.bench_config(args.iterations)
    from transformers import AutoConfig

    mcfg = AutoConfig.from_pretrained(str(base_dir))
    d, vocab = mcfg.n_embd, mcfg.vocab_size
    rates = MatmulRates()
    big_rates = [rates.gflops(*BIG)]
    rates.seconds.clear()

    # FLOPs: one iteration of the trainer's own step, every matmul recorded
    recorders = count_ppo(cfg, base_dir, rm_dir, train_prompts)
    # seconds: the trainer's own per-phase timers over a run
    history = time_ppo(cfg, base_dir, rm_dir, train_prompts, Path(args.cache) / "roofline-ppo")
    big_rates.append(rates.gflops(*BIG))
    rates.seconds.clear()
    timed = history[1:] or history
    seconds = {p: statistics.median(h.get(f"time/{p}", 0.0) for h in timed) for p in PHASES}
    iteration_s = statistics.median(h["iteration_s"] for h in timed)
    rng = random.Random(0)
    rm_texts = [t for t in rng.sample(pos + neg, 64)]
    rm_rec, rm_s = rm_step(base_dir, rm_texts, args.step_repeats)
    base_rec, base_s = base_step(base_dir, rng.sample(pos + neg, 64), args.step_repeats)
    big_rates.append(rates.gflops(*BIG))
    big = statistics.median(big_rates)

    # the shape grid: rows of generation (batch x 1), a minibatch and a scoring pass, and the big shape's
    # the rollout's real tokens: the reference's scoring pass (the policy's old log-probs come from decoding)
    score_rows = max(m for (b, m, k, n) in recorders["score_ref"].mm if b == 1)
    mb_rows = score_rows * cfg.minibatch_size // cfg.batch_size
    grid = {}
    for rows in sorted({cfg.batch_size, mb_rows, score_rows, BIG[0]}):
        for k, n in ((d, 3 * d), (d, d), (d, 4 * d), (4 * d, d), (d, vocab)):
            grid[f"{rows}x{k} @ {k}x{n}"] = rates.gflops(rows, k, n)

    rows = []

    def row(name, recorder_list, secs):
        flops = sum(r.flops for r in recorder_list)
        ideal = sum(r.same_shape_seconds(rates) for r in recorder_list)
        mm_flops = sum(r.matmul_flops for r in recorder_list)
        achieved = flops / secs / 1e9 if secs else float("nan")
        same = mm_flops / ideal / 1e9 if ideal else float("nan")
        rows.append({"phase": name, "gflop": flops / 1e9, "seconds": secs, "gflops": achieved,
                     "of_big": achieved / big, "same_shape_gflops": same,
                     "of_same_shape": achieved / same if ideal else float("nan"),
                     "same_shape_seconds": ideal})

    for p in PHASES:
        if not seconds[p] and (p not in recorders or not recorders[p].flops):
            continue  # a phase this run did not have (score_policy: the old log-probs come from decoding)
        row(p, [recorders[p]] if p in recorders else [], seconds[p])
    other = iteration_s - sum(seconds.values())
    rows.append({"phase": "other (decode, metrics, ...)", "gflop": 0.0, "seconds": other, "gflops": 0.0,
                 "of_big": 0.0, "same_shape_gflops": float("nan"), "of_same_shape": 0.0, "same_shape_seconds": 0.0})
    row("PPO iteration", list(recorders.values()), iteration_s)
    row("reward-model step", [rm_rec], rm_s)
    row("base LM step", [base_rec], base_s)

    print(f"\nfp32 matmul rate, {args.threads} threads (GFLOP/s): big {BIG[0]}x{BIG[1]} @ {BIG[1]}x{BIG[2]}: "
          f"{big:.1f} (median of {', '.join(f'{r:.1f}' for r in big_rates)}: before, after PPO, after the steps)")
    for shape, rate in grid.items():
        print(f"  {shape:>22}  {rate:6.1f}")
    print(f"\nPPO at benchmarks/ppo.py's settings (64 episodes, 16 new tokens, 4 epochs x 4 minibatches), "
          f"median of {len(timed)} iterations; {vocab} vocabulary, {mcfg.n_layer} layers, {d} wide")
    print(f"{'phase':<30}{'GFLOP':>8}{'s':>8}{'GFLOP/s':>9}{'of big':>8}{'same-shape':>11}{'of it':>7}"
          "   (same-shape: GFLOP/s of torch.mm alone on the phase's matmul shapes)")
    for r in rows:
        print(f"{r['phase']:<30}{r['gflop']:8.1f}{r['seconds']:8.3f}{r['gflops']:9.1f}{r['of_big']:8.0%}"
              f"{r['same_shape_gflops']:11.1f}{r['of_same_shape']:7.0%}")
    report = {"threads": args.threads, "torch": torch.__version__, "cpu_count": os.cpu_count(),
              "big_shape": list(BIG), "big_gflops_measured": big_rates, "big_gflops": big, "grid_gflops": grid,
              "rows": rows,
              "ppo_iterations_timed": len(timed), "ppo_eps": cfg.batch_size / iteration_s,
              "model": {"layers": mcfg.n_layer, "width": d, "vocab": vocab},
              "phase_seconds_per_iteration": [{k: v for k, v in h.items() if k.startswith("time/")} for h in history]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
