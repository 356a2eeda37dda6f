"""Registry comparisons: every version of a registered model with what a person compares them by.

For each version of ``reward-model`` or ``policy``: its aliases, key metrics, the params that
differ from the champion's, the data it was trained on (``rlhf.data_hash`` and the ``dvc.lock``
md5 of each input, tagged on the stage runs by :func:`rlhf_ops.tracking.data_tags`), git commit
and run ids.

Where the figures live: a version is registered by the ``evaluate_reward_model`` / ``ppo`` stage
run (the version's ``run_id``). The reward model's training params are on its
``train_reward_model`` run, found by lineage: the training run whose ``dvc.out.models/reward_model``
tag equals the registering run's ``dvc.dep.models/reward_model`` tag; else the sibling under the same
pipeline run; else the latest training run that started before it. The reward model's linear
baseline figures (``baseline.*``) are metrics of that registering run. The policy's judge score,
KL, distinct-2 and fluency yardstick are tags the ``evaluate_samples`` stage wrote on the version.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlhf_ops import lineage, registry, tracking

# name -> [(metric key, label)]: read from the version's tags rlhf.eval.<key>, else the run's metrics.
METRICS: dict[str, list[tuple[str, str]]] = {
    registry.REWARD_MODEL: [("pairwise_accuracy", "test pairwise acc"), ("exact_order_accuracy", "exact order"),
                            ("kendall_tau_b", "tau-b"), ("baseline.pairwise_accuracy", "baseline pairwise"),
                            ("baseline.exact_order_accuracy", "baseline exact order")],
    registry.POLICY: [("judge_score", "judge score"), ("kl", "KL"), ("distinct_2", "distinct-2"),
                      ("yardstick.tuned.perplexity", "yardstick ppl"), ("yardstick.tuned.ratio", "yardstick / real")],
}
# Where the metrics come first from: the registering run (RM: evaluate_reward_model computed them
# on that run's test data) or the version's tags (policy: written there by evaluate_samples).
METRICS_FROM_RUN_FIRST = {registry.REWARD_MODEL: True, registry.POLICY: False}
# The stage whose run holds the training params, and the model directory it writes.
TRAINING_STAGE = {registry.REWARD_MODEL: "train_reward_model", registry.POLICY: "ppo"}
MODEL_DIR = {registry.REWARD_MODEL: "models/reward_model", registry.POLICY: "models/policy"}
# The test data of the evaluation (a dvc.dep of the registering or evaluating run).
EVAL_DATA = {registry.REWARD_MODEL: "data/prepared/ranklists/test.jsonl", registry.POLICY: "data/prepared/prompts.jsonl"}


@dataclass
class VersionSummary:
    """One row of ``rlhf compare``: a model version and where it came from."""

    name: str
    version: str
    aliases: list[str]
    created: str | None
    run_id: str | None
    registering_stage: str | None
    training_run_id: str | None
    metrics: dict[str, float | None]
    params: dict[str, str]
    params_diff: dict[str, dict[str, str | None]] = field(default_factory=dict)
    data_hash: str | None = None
    data_deps: dict[str, str] = field(default_factory=dict)
    eval_data_hash: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    dvc_exp_name: str | None = None
    promotion: dict[str, str] = field(default_factory=dict)
    algorithm: str | None = None  # policy: the version's tag rlhf.algorithm (ppo, grpo, rloo, dpo; untagged = ppo)


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _ran(runs: list) -> list:
    """Runs that did the stage's work, not the records of a skipped stage."""
    return [r for r in runs if r.data.tags.get("rlhf.status") != "skipped"]


def algorithm_of(name: str, tags: dict[str, str]) -> str | None:
    """A policy version's algorithm (tag ``rlhf.algorithm``; versions from before the tag are ppo's)."""
    return tags.get("rlhf.algorithm", "ppo") if name == registry.POLICY else None


def training_stage(name: str, algorithm: str | None = None) -> tuple[str, str]:
    """``(stage, model directory)`` of the training that made a version (TRL policies: ``train_policy@<alg>``)."""
    if name == registry.POLICY and algorithm not in (None, "ppo"):
        return f"train_policy@{algorithm}", f"models/policy_{algorithm}"
    return TRAINING_STAGE[name], MODEL_DIR[name]


def training_run(name: str, registering_run, algorithm: str | None = None):
    """The run that trained the version's model (``None`` when not found); see the module docstring."""
    stage, model_dir = training_stage(name, algorithm)
    if registering_run is None:
        return None
    if registering_run.data.tags.get("rlhf.stage") == stage:
        return registering_run
    exp = [registering_run.info.experiment_id]
    stage_filter = f"tags.`rlhf.stage` = '{stage}'"
    model_hash = registering_run.data.tags.get(f"dvc.dep.{model_dir}")
    searches = []
    if model_hash:
        searches.append(f"{stage_filter} and tags.`dvc.out.{model_dir}` = '{_quote(model_hash)}'")
    parent = registering_run.data.tags.get("mlflow.parentRunId")
    if parent:
        searches.append(f"{stage_filter} and tags.`mlflow.parentRunId` = '{_quote(parent)}'")
    searches.append(f"{stage_filter} and attributes.start_time <= {registering_run.info.start_time}")
    for filter_string in searches:
        runs = tracking.search_runs(exp, filter_string, max_results=50)
        found = _ran(runs) or runs
        if found:
            return found[0]
    return None


def _data(run) -> tuple[str | None, dict[str, str]]:
    if run is None:
        return None, {}
    tags = run.data.tags
    deps = {k[len("dvc.dep."):]: v for k, v in tags.items() if k.startswith("dvc.dep.")}
    return tags.get("rlhf.data_hash"), deps


def _metrics(name: str, tags: dict[str, str], run) -> dict[str, float | None]:
    run_metrics = run.data.metrics if run is not None else {}
    out = {}
    for key, _label in METRICS[name]:
        from_run = _float(run_metrics.get(key))
        from_tag = _float(tags.get(f"rlhf.eval.{key}"))
        first, second = (from_run, from_tag) if METRICS_FROM_RUN_FIRST[name] else (from_tag, from_run)
        out[key] = first if first is not None else second
    return out


def params_diff(params: dict[str, str], champion: dict[str, str] | None) -> dict[str, dict[str, str | None]]:
    """``{key: {"value", "champion"}}`` for every param whose value differs from the champion's."""
    if champion is None:
        return {}
    keys = sorted(set(params) | set(champion))
    return {k: {"value": params.get(k), "champion": champion.get(k)} for k in keys
            if params.get(k) != champion.get(k)}


def summarize(name: str) -> dict[str, Any]:
    """Every version of ``name``, newest first: ``{"name", "champion", "versions": [VersionSummary as dict]}``.

    Raises ``ValueError`` for a name other than ``reward-model`` / ``policy``.
    """
    if name not in METRICS:
        raise ValueError(f"unknown registered model {name!r}; expected one of {sorted(METRICS)}")
    code_root = Path(__file__).resolve().parents[1]  # where rlhf/, tasks/... live: tells code deps from data
    versions = tracking.model_versions(name)  # none when no such registered model (yet)
    aliases_of: dict[str, list[str]] = {}
    for alias, version in tracking.model_aliases(name).items():
        aliases_of.setdefault(version, []).append(alias)

    rows: list[VersionSummary] = []
    for mv in sorted(versions, key=lambda v: int(v.version), reverse=True):
        tags = dict(mv.tags or {})
        run = tracking.get_run(mv.run_id)
        algorithm = algorithm_of(name, tags)
        trainer = training_run(name, run, algorithm)
        params = dict(trainer.data.params) if trainer is not None else {}
        if run is not None and trainer is not None and run.info.run_id != trainer.info.run_id:
            params = {**run.data.params, **params}
        data_hash, deps = _data(trainer or run)
        _, eval_deps = _data(run)
        run_tags = run.data.tags if run is not None else {}
        created = (dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=dt.timezone.utc).isoformat(timespec="seconds")
                   if mv.creation_timestamp else None)
        dirty = run_tags.get("git.dirty")
        rows.append(VersionSummary(
            name=name, version=str(mv.version), aliases=sorted(aliases_of.get(str(mv.version), [])), created=created,
            run_id=mv.run_id, registering_stage=run_tags.get("rlhf.stage"),
            training_run_id=trainer.info.run_id if trainer is not None else None,
            metrics=_metrics(name, tags, run), params=params,
            data_hash=data_hash,
            data_deps={p: h for p, h in deps.items() if not lineage.is_code(code_root, p)},
            eval_data_hash=eval_deps.get(EVAL_DATA[name]) or tags.get("rlhf.eval.data_hash"),
            git_commit=run_tags.get("git.commit") or run_tags.get("mlflow.source.git.commit"),
            git_dirty=None if dirty is None else dirty == "true",
            dvc_exp_name=run_tags.get("dvc.exp_name") or (trainer.data.tags.get("dvc.exp_name") if trainer else None),
            promotion={k[len("rlhf.promotion."):]: v for k, v in tags.items() if k.startswith("rlhf.promotion.")},
            algorithm=algorithm,
        ))
    champion = next((r for r in rows if registry.CHAMPION in r.aliases), None)
    for row in rows:
        if champion is not None and row is not champion:
            row.params_diff = params_diff(row.params, champion.params)
    return {"name": name, "champion": champion.version if champion else None,
            "versions": [asdict(r) for r in rows]}
