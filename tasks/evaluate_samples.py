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
PREPARED = Path("data/prepared")  # the fluency yardstick fits on its test reviews


def _ppo_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def _flat(result: dict) -> dict:
    """The figures of an evaluation that go to metrics/evaluate_samples.json (no per-sample rows)."""
    out = {k: result[k] for k in ("kl", "win_rate", "n_samples", "n_prompts", "yardstick") if k in result}
    out["base"], out["tuned"] = dict(result["base"]), dict(result["tuned"])
    out["groups"] = {g: {k: v for k, v in d.items()} for g, d in result.get("groups", {}).items()}
    return out


def _ratio(figures: dict) -> str:
    return "-" if figures.get("ratio") is None else f"{figures['ratio']:.2f}"


def policy_dir(algorithm: str) -> Path:
    """The model directory of ``algorithm``'s policy: ``ppo`` -> models/policy, else models/policy_<name>."""
    return POLICY_DIR if algorithm == "ppo" else Path(f"models/policy_{algorithm}")


def primary_algorithm(algorithms) -> str:
    """The algorithm whose figures are the top level of the metrics and whose report is reports/samples/."""
    return "ppo" if "ppo" in algorithms else algorithms[0]


def run(params: Params, root: Path = Path(".")) -> dict:
    """Sample from base and each policy in ``policy.algorithms`` on the same prompts and seeds, score,
    report, decide promotion (each against the one ``policy`` champion, in the listed order).

    Metrics: the top level holds the primary algorithm's figures (``ppo`` when listed: the keys as
    before), ``algorithm`` names it; ``algorithms: {name: figures + promotion}`` holds every one.
    Reports: the primary's in reports/samples/, the others' in reports/samples/algorithms/<name>/.
    """
    from transformers import AutoModelForCausalLM

    from rlhf.evaluation.yardstick import read_test_reviews
    from rlhf.judge.loader import load_judge
    from rlhf.evaluation.samples import select_eval_prompts
    from rlhf.reward.model import load_reward_model
    from rlhf.seed import seed_everything
    from rlhf.tokenizer import load_tokenizer

    cfg = params.eval
    algorithms = list(params.policy.algorithms)
    primary = primary_algorithm(algorithms)
    seed_everything(params.seed)
    prompts = select_eval_prompts(read_jsonl(root / PROMPTS), cfg.n_heldout_prompts)
    reviews = read_test_reviews(root / PREPARED)  # before sampling: a missing file fails fast
    for algorithm in algorithms:  # fail fast on a policy that was not trained
        directory = root / policy_dir(algorithm)
        if algorithm != "ppo" and ((directory / "SKIPPED").is_file() or not directory.is_dir()):
            raise FileNotFoundError(f"{policy_dir(algorithm)}: no trained {algorithm} policy (policy.algorithms lists "
                                    f"it: run `dvc repro train_policy` or `rlhf run`)")
    tok = load_tokenizer(root / BASE_DIR)
    from rlhf.compute import resolve_device

    device = resolve_device(params.compute.device)
    base = AutoModelForCausalLM.from_pretrained(root / BASE_DIR).to(device)
    judge = load_judge(cfg.judge, device=device)
    scorer = load_reward_model(root / RM_DIR, device=device) if (root / RM_DIR).is_dir() else None
    others = root / REPORT_DIR / "algorithms"  # a DVC out: exists even when only the primary ran
    others.mkdir(parents=True, exist_ok=True)
    (others / "README.md").write_text("Evaluation reports of the policy algorithms other than "
                                      f"{primary} (policy.algorithms: {', '.join(algorithms)}), one folder each.\n",
                                      encoding="utf-8")
    per_algorithm: dict[str, dict] = {}
    base_cache: dict = {}  # the base's samples and scores, computed once for every algorithm
    for algorithm in algorithms:
        report_dir = root / REPORT_DIR if algorithm == primary else others / algorithm
        per_algorithm[algorithm] = _evaluate_one(params, root, algorithm, base, tok, prompts, judge, scorer, reviews,
                                                 report_dir, ppo_curves=algorithm == primary, base_cache=base_cache)
    return {**per_algorithm[primary], "algorithm": primary, "algorithms": per_algorithm}


def _evaluate_one(params: Params, root: Path, algorithm: str, base, tok, prompts, judge, scorer, reviews,
                  report_dir: Path, *, ppo_curves: bool, base_cache: dict | None = None) -> dict:
    """One policy: evaluation, fluency yardstick, report, promotion gate. Returns its metrics."""
    from transformers import AutoModelForCausalLM

    from rlhf.evaluation.promotion import decide_promotion
    from rlhf.evaluation.report import write_report
    from rlhf.evaluation.samples import evaluate_policy
    from rlhf.evaluation.yardstick import fluency_yardstick
    from rlhf_ops import registry, tracking

    cfg = params.eval
    directory = root / policy_dir(algorithm)
    policy = AutoModelForCausalLM.from_pretrained(directory).to(base.device)
    result = evaluate_policy(base, policy, tok, prompts, cfg, judge, reward_scorer=scorer, seed=params.seed,
                             progress=True, base_cache=base_cache)
    del policy
    result["yardstick"] = fluency_yardstick(reviews,
                                            {k: [(r["prompt"], r[k]) for r in result["rows"]] for k in ("base", "tuned")},
                                            seed=params.seed)
    paths = write_report(result, report_dir, ppo_history=_ppo_history(root / PPO_METRICS) if ppo_curves else None)
    tracking.log_artifact(report_dir, "reports" if ppo_curves else f"reports/algorithms/{algorithm}")
    figures = _flat(result)

    # The promotion gate: the challenger is the registered version of these policy files.
    version = registry.find_version(registry.POLICY, tag="rlhf.model_hash", value=registry.dir_hash(directory))
    stage = "ppo" if algorithm == "ppo" else f"train_policy@{algorithm}"
    gate: dict = {"version": None, "promoted": False, "decision": f"policy not registered (run the {stage} stage)"}
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
            "rlhf.eval.base_distinct_2": result["base"]["distinct_2"],
            **{f"rlhf.eval.yardstick.tuned.{k}": result["yardstick"]["tuned"][k] for k in ("perplexity", "ratio")
               if result["yardstick"]["tuned"][k] is not None}})
        if champion is not None and champion.version == version.version:
            gate = {"version": int(version.version), "promoted": False, "decision": "already champion"}
        else:
            if decision.promote:
                registry.promote(registry.POLICY, version.version, reason=decision.reason)
            gate = {"version": int(version.version), "promoted": decision.promote, "decision": decision.reason,
                    "champion_version": int(champion.version) if champion else None,
                    "champion_judge_score": None if champion_result is None else champion_result["tuned"]["judge_score"]}
            if champion_result is not None and "comparison" in champion_result:
                gate["champion_comparison"] = champion_result["comparison"]
        registry.set_version_tags(registry.POLICY, version.version, {"rlhf.promotion.decision": gate["decision"]})
        if "champion_comparison" in gate:
            registry.set_version_tags(registry.POLICY, version.version,
                                      {"rlhf.promotion.champion_comparison": gate["champion_comparison"]})
            print(f"evaluate_samples[{algorithm}]: {gate['champion_comparison']}")
    print(f"evaluate_samples[{algorithm}]: judge {result['base']['judge_score']:.3f} -> "
          f"{result['tuned']['judge_score']:.3f}, KL {result['kl']:.2f} nats; yardstick perplexity ratio to real "
          f"reviews {_ratio(result['yardstick']['base'])} -> {_ratio(result['yardstick']['tuned'])}; "
          f"{gate['decision']}; report {paths['samples_md']}")
    return {**figures, "promotion": gate}


def _champion_result(champion, key: str, base, tok, prompts, cfg, judge, scorer, seed: int) -> dict:
    """The champion's figures on the same prompts and seeds (stored ones when the eval key matches)."""
    from transformers import AutoModelForCausalLM

    from rlhf.evaluation.samples import evaluate_policy
    from rlhf_ops import registry

    tags = champion.tags
    if tags.get("rlhf.eval.key") == key and "rlhf.eval.judge_score" in tags:
        return {"eval_key": key, "kl": float(tags["rlhf.eval.kl"]),
                "tuned": {"judge_score": float(tags["rlhf.eval.judge_score"]),
                          "distinct_2": float(tags["rlhf.eval.distinct_2"])},
                "base": {"distinct_2": float(tags["rlhf.eval.base_distinct_2"])}}
    directory = registry.download(champion)
    model = AutoModelForCausalLM.from_pretrained(directory).to(base.device)
    champion_tok = _own_tokenizer(directory, model, tok)
    if same_vocabulary(champion_tok, tok):
        return evaluate_policy(base, model, tok, prompts, cfg, judge, reward_scorer=scorer, seed=seed)
    # Tuned from another base (another vocabulary): its ids mean nothing to this base's tokenizer,
    # and KL or perplexity under this base do not apply. Sample it with its own tokenizer on the same
    # prompts and seeds and compare what does apply: the judge's mean over the texts.
    return judge_only_result(model, champion_tok, prompts, cfg, judge, seed) | {
        "comparison": f"judge score only: champion v{champion.version} uses a different tokenizer "
                      f"(vocabulary {len(champion_tok)} vs this base's {len(tok)}), so it was sampled with its own; "
                      "KL and perplexity under this base do not apply to it"}


def same_vocabulary(a, b) -> bool:
    """Do tokenizers ``a`` and ``b`` map the same tokens to the same ids (so one model's ids decode with both)?"""
    return len(a) == len(b) and a.get_vocab() == b.get_vocab()


def _own_tokenizer(directory: Path, model, tok):
    """The tokenizer saved with a registered model; without one, ``tok`` when the vocabulary sizes agree."""
    from rlhf.tokenizer import load_tokenizer

    try:
        return load_tokenizer(directory)
    except (OSError, ValueError) as e:
        if model.config.vocab_size == len(tok):
            return tok
        raise ValueError(f"the champion in {directory} has no tokenizer and a vocabulary of {model.config.vocab_size} "
                         f"(this base: {len(tok)}): its samples cannot be decoded ({e})") from None


def judge_only_result(model, tok, prompts, cfg, judge, seed: int) -> dict:
    """``model``'s judge figures on ``prompts`` (sampled as :func:`evaluate_policy` samples the tuned policy)."""
    from rlhf.evaluation.samples import eval_key, sample

    texts = [p if isinstance(p, str) else p["prompt"] for p in prompts]
    batch = sample(model, tok, texts, cfg.samples_per_prompt, cfg, seed)
    scores = [float(s) for s in judge.score(batch.texts)]
    return {"eval_key": eval_key(texts, cfg, seed), "n_samples": len(scores), "n_prompts": len(texts),
            "tuned": {"judge_score": sum(scores) / len(scores),
                      "judge_positive_rate": sum(s > cfg.positive_threshold for s in scores) / len(scores)},
            "rows": [{"prompt": p, "tuned": c, "tuned_judge": s}
                     for p, c, s in zip(batch.prompts, batch.completions, scores)]}


if __name__ == "__main__":
    sys.exit(stage_main(STAGE, run, sections=("seed", "eval")))
