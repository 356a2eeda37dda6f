"""Stage ``evaluate_samples``: base vs tuned policy by an independent judge; the ``policy`` promotion gate."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from rlhf.params import Params
from tasks.stage import read_jsonl, stage_main

STAGE = "evaluate_samples"
BASE_DIR = Path("models/base")
POLICY_DIR = Path("models/policy")
RM_DIR = Path("models/reward_model")
PROMPTS = Path("data/prepared/prompts.jsonl")
REPORT_DIR = Path("reports/samples")
PPO_METRICS = Path("reports/ppo/metrics.csv")


def _ppo_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def _flat(result: dict) -> dict:
    """The figures of an evaluation that go to metrics/evaluate_samples.json (no per-sample rows)."""
    out = {k: result[k] for k in ("kl", "win_rate", "n_samples", "n_prompts") if k in result}
    out["base"], out["tuned"] = dict(result["base"]), dict(result["tuned"])
    out["groups"] = {g: {k: v for k, v in d.items()} for g, d in result.get("groups", {}).items()}
    return out


def run(params: Params, root: Path = Path(".")) -> dict:
    """Sample from base and policy on the same prompts and seeds, score, report, decide promotion."""
    from transformers import AutoModelForCausalLM

    from rlhf.evaluation.promotion import decide_promotion
    from rlhf.evaluation.report import write_report
    from rlhf.evaluation.samples import evaluate_policy, select_eval_prompts
    from rlhf.judge import load_judge
    from rlhf.reward.model import load_reward_model
    from rlhf.seed import seed_everything
    from rlhf.tokenizer import load_tokenizer
    from tasks import registry, tracking

    cfg = params.eval
    seed_everything(params.seed)
    prompts = select_eval_prompts(read_jsonl(root / PROMPTS), cfg.n_heldout_prompts)
    tok = load_tokenizer(root / BASE_DIR)
    base = AutoModelForCausalLM.from_pretrained(root / BASE_DIR)
    policy = AutoModelForCausalLM.from_pretrained(root / POLICY_DIR)
    judge = load_judge(cfg.judge)
    scorer = load_reward_model(root / RM_DIR) if (root / RM_DIR).is_dir() else None
    result = evaluate_policy(base, policy, tok, prompts, cfg, judge, reward_scorer=scorer, seed=params.seed,
                             progress=True)
    paths = write_report(result, root / REPORT_DIR, ppo_history=_ppo_history(root / PPO_METRICS))
    tracking.log_artifact(root / REPORT_DIR, "reports")
    figures = _flat(result)

    # The promotion gate: the challenger is the registered version of these policy files.
    version = registry.find_version(registry.POLICY, tag="rlhf.model_hash", value=registry.dir_hash(root / POLICY_DIR))
    gate: dict = {"version": None, "promoted": False, "decision": "policy not registered (run the ppo stage)"}
    if version is not None:
        champion = registry.by_alias(registry.POLICY, registry.CHAMPION)
        champion_result = None
        if champion is not None and champion.version != version.version:
            champion_result = _champion_result(champion, result["eval_key"], base, tok, prompts, cfg, judge, scorer,
                                               params.seed)
        decision = decide_promotion(result, champion_result, cfg.max_kl, cfg.min_distinct_2_ratio)
        registry.set_version_tags(registry.POLICY, version.version, {
            "rlhf.eval.key": result["eval_key"], "rlhf.eval.judge_score": result["tuned"]["judge_score"],
            "rlhf.eval.kl": result["kl"], "rlhf.eval.distinct_2": result["tuned"]["distinct_2"],
            "rlhf.eval.base_distinct_2": result["base"]["distinct_2"]})
        if champion is not None and champion.version == version.version:
            gate = {"version": int(version.version), "promoted": False, "decision": "already champion"}
        else:
            if decision.promote:
                registry.promote(registry.POLICY, version.version, reason=decision.reason)
            gate = {"version": int(version.version), "promoted": decision.promote, "decision": decision.reason,
                    "champion_version": int(champion.version) if champion else None,
                    "champion_judge_score": None if champion_result is None else champion_result["tuned"]["judge_score"]}
        registry.set_version_tags(registry.POLICY, version.version, {"rlhf.promotion.decision": gate["decision"]})
    print(f"evaluate_samples: judge {result['base']['judge_score']:.3f} -> {result['tuned']['judge_score']:.3f}, "
          f"KL {result['kl']:.2f} nats; {gate['decision']}; report {paths['samples_md']}")
    return {**figures, "promotion": gate}


def _champion_result(champion, key: str, base, tok, prompts, cfg, judge, scorer, seed: int) -> dict:
    """The champion's figures on the same prompts and seeds (stored ones when the eval key matches)."""
    from transformers import AutoModelForCausalLM

    from rlhf.evaluation.samples import evaluate_policy
    from tasks import registry

    tags = champion.tags
    if tags.get("rlhf.eval.key") == key and "rlhf.eval.judge_score" in tags:
        return {"eval_key": key, "kl": float(tags["rlhf.eval.kl"]),
                "tuned": {"judge_score": float(tags["rlhf.eval.judge_score"]),
                          "distinct_2": float(tags["rlhf.eval.distinct_2"])},
                "base": {"distinct_2": float(tags["rlhf.eval.base_distinct_2"])}}
    model = AutoModelForCausalLM.from_pretrained(registry.download(champion))
    return evaluate_policy(base, model, tok, prompts, cfg, judge, reward_scorer=scorer, seed=seed)


if __name__ == "__main__":
    sys.exit(stage_main(STAGE, run, sections=("seed", "eval")))
