"""Stage ``train_policy@<algorithm>``: a policy trained by TRL (GRPO, RLOO or DPO); registers ``policy``.

One ``foreach`` stage of ``dvc.yaml`` (``train_policy@grpo``, ``train_policy@rloo``,
``train_policy@dpo``); ``sh tasks/run.sh train_policy --algorithm <name>``. Each writes
``models/policy_<name>/`` and ``metrics/<name>.json``. An algorithm not listed in
``policy.algorithms`` trains nothing: its model directory holds only ``SKIPPED`` (why) and its
metrics are ``{"skipped": true}``, so the default pipeline (``[ppo]``) costs no time here and
``dvc exp run -S 'policy.algorithms=[ppo,grpo,rloo,dpo]'`` trains them all.

GRPO / RLOO: the same train prompts and base model as ``ppo``, the reward of
:func:`rlhf.ppo.rewards.build_reward_fn` (the reward model normalised as PPO normalises it, or the
judge). DPO: preference pairs from the prepared train rank lists when they carry prompts, else
sampled from the base and ranked by the reward (``pair_source`` in the metrics). TRL's per-step
metrics go to this stage's MLflow run; the model is registered as a ``policy`` version tagged
``rlhf.algorithm=<name>``; ``evaluate_samples`` evaluates it under the same gate as PPO's.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from rlhf.params import Params
from tasks.stage import read_jsonl, stage_main

STAGE = "train_policy"
ALGORITHMS = ("grpo", "rloo", "dpo")  # the TRL ones; ppo has its own stage
BASE_DIR = Path("models/base")
RM_DIR = Path("models/reward_model")
PROMPTS = Path("data/prepared/prompts.jsonl")
RANKLISTS = Path("data/prepared/ranklists/train.jsonl")
SKIPPED = "SKIPPED"


def policy_dir(algorithm: str) -> Path:
    """Where ``algorithm``'s policy is saved (``ppo``: ``models/policy``, as before)."""
    return Path("models/policy") if algorithm == "ppo" else Path(f"models/policy_{algorithm}")


def is_skipped(directory: Path) -> bool:
    """A placeholder directory written for an algorithm that was not in ``policy.algorithms``."""
    return (directory / SKIPPED).is_file()


def _round(metrics: dict) -> dict:
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in metrics.items()
            if isinstance(v, (int, float, str, bool)) or v is None}


def run(params: Params, root: Path = Path("."), item: str = "grpo") -> dict:
    """Train ``item`` ('grpo', 'rloo' or 'dpo') from ``models/base`` when ``policy.algorithms`` lists it."""
    algorithm = item
    if algorithm not in ALGORITHMS:
        raise ValueError(f"train_policy: algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
    out = root / policy_dir(algorithm)
    if out.exists():
        shutil.rmtree(out)
    if algorithm not in params.policy.algorithms:
        out.mkdir(parents=True)
        reason = (f"{algorithm} is not in policy.algorithms {params.policy.algorithms}; "
                  f"dvc exp run -S 'policy.algorithms=[{','.join([*params.policy.algorithms, algorithm])}]' trains it\n")
        (out / SKIPPED).write_text(reason, encoding="utf-8")
        print(f"train_policy@{algorithm}: skipped ({reason.strip()})")
        return {"algorithm": algorithm, "skipped": True}

    from rlhf.algorithms.dpo import preference_pairs, train_dpo
    from rlhf.algorithms.online import train_grpo, train_rloo
    from rlhf.compute import prepare_device
    from rlhf.ppo.rewards import build_reward_fn
    from rlhf.seed import seed_everything
    from rlhf.tokenizer import load_tokenizer
    from rlhf_ops import registry, tracking

    cfg = getattr(params, algorithm)
    seed_everything(params.seed)
    device = prepare_device(params.compute)
    prompts = [r["prompt"] for r in read_jsonl(root / PROMPTS) if r.get("split") == "train"]
    if not prompts:
        raise ValueError(f"{PROMPTS}: no train prompts; run the prepare stage")
    tok = load_tokenizer(root / BASE_DIR)

    def reward_fn():
        fn = build_reward_fn(cfg, tok, reward_model_dir=root / RM_DIR, judge_cfg=params.eval.judge)
        if hasattr(fn, "scorer") and device != "cpu":
            fn.scorer.to(device)
        return fn

    def on_log(step: int, metrics: dict) -> None:
        tracking.log_metrics(metrics, step=step)

    common = dict(seed=params.seed, device=device, mixed_precision=params.compute.mixed_precision, on_log=on_log)
    info: dict = {}
    if algorithm == "dpo":
        lists = read_jsonl(root / RANKLISTS) if (root / RANKLISTS).is_file() else []
        source_needs_reward = cfg.pair_source == "sampled" or not any(obj.get("prompt") for obj in lists)
        pairs, info = preference_pairs(cfg, root / BASE_DIR, lists=lists, prompts=prompts,
                                       reward_fn=reward_fn() if source_needs_reward else None, seed=params.seed)
        print(f"train_policy@dpo: {len(pairs)} preference pairs ({info['pair_source']})")
        summary = train_dpo(cfg, root / BASE_DIR, pairs, out, **common)
    else:
        train = train_grpo if algorithm == "grpo" else train_rloo
        summary = train(cfg, root / BASE_DIR, prompts, reward_fn(), out, **common)
    version, new = registry.register_model_dir(out, registry.POLICY, tags={"rlhf.algorithm": algorithm})
    if not new:  # the same files registered before (e.g. by another algorithm's identical run): say whose
        registry.set_version_tags(registry.POLICY, version.version, {"rlhf.algorithm": algorithm})
    return {**_round({**info, **summary}), "algorithm": algorithm, "skipped": False,
            "registry": {"version": int(version.version), "new_version": new}}


if __name__ == "__main__":
    sys.exit(stage_main(STAGE, run, sections=("seed", "policy"), item=("--algorithm", ALGORITHMS)))
