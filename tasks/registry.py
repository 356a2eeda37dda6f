"""The MLflow model registry: register a stage's model, champion/challenger aliases, promotion.

A new version gets alias ``challenger``; it becomes ``champion`` only when an evaluation on the
same data beats the current champion (the first version becomes champion). Every decision is
written on the version as tags (``rlhf.promotion.*``) so ``rlhf compare`` and the UI show it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from rlhf.files import dir_hash

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous-champion"
# Model names in the registry, per pipeline role.
REWARD_MODEL, POLICY = "reward-model", "policy"
TASK_OF = {REWARD_MODEL: "text-classification", POLICY: "text-generation"}


@dataclass
class Version:
    """What the pipeline needs of a model version."""

    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str]
    aliases: list[str]


def _version(mv: Any) -> Version:
    return Version(mv.name, str(mv.version), mv.run_id, mv.source, dict(mv.tags or {}), list(mv.aliases or []))


def find_version(name: str, *, tag: str, value: str) -> Version | None:
    """The newest version of ``name`` whose tag ``tag`` equals ``value``."""
    try:
        versions = MlflowClient().search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    hits = [v for v in versions if (v.tags or {}).get(tag) == value]
    return _version(max(hits, key=lambda v: int(v.version))) if hits else None


def by_alias(name: str, alias: str) -> Version | None:
    try:
        return _version(MlflowClient().get_model_version_by_alias(name, alias))
    except MlflowException:
        return None


def all_versions(name: str) -> list[Version]:
    """Every version of ``name``, newest first (aliases filled in)."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    return sorted((_version(client.get_model_version(name, v.version)) for v in versions),
                  key=lambda v: int(v.version), reverse=True)


def register_model_dir(model_dir: str | Path, name: str, *, tags: Mapping[str, Any] | None = None,
                       extra_artifacts: Mapping[str, str | Path] | None = None) -> tuple[Version, bool]:
    """Log ``model_dir`` (``save_pretrained`` files) in the active run and register it as ``name``.

    The same files registered before (same :func:`dir_hash`) are not registered twice: that
    version is returned with ``False``. A new version gets the ``challenger`` alias.
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    model_dir = Path(model_dir)
    digest = dir_hash(model_dir)
    existing = find_version(name, tag="rlhf.model_hash", value=digest)
    if existing is not None:
        return existing, False
    auto = AutoModelForSequenceClassification if TASK_OF[name] == "text-classification" else AutoModelForCausalLM
    model = auto.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"transformers=={transformers.__version__}"]
    info = mlflow.transformers.log_model(transformers_model={"model": model, "tokenizer": tokenizer},
                                         name=name.replace("-", "_"), task=TASK_OF[name],
                                         pip_requirements=requirements)
    for artifact_path, path in (extra_artifacts or {}).items():
        mlflow.log_artifact(str(path), artifact_path=artifact_path)
    client = MlflowClient()
    mv = mlflow.register_model(info.model_uri, name, tags={"rlhf.model_hash": digest,
                                                           **{k: str(v) for k, v in (tags or {}).items()}})
    client.set_registered_model_alias(name, CHALLENGER, mv.version)
    return _version(client.get_model_version(name, mv.version)), True


def set_version_tags(name: str, version: str, tags: Mapping[str, Any]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))


def promote(name: str, version: str, *, reason: str) -> Version | None:
    """Move ``champion`` to ``version``; the previous champion keeps alias ``previous-champion``.

    Returns the previous champion (``None`` when there was none or it is the same version).
    """
    client = MlflowClient()
    previous = by_alias(name, CHAMPION)
    if previous is not None and previous.version != str(version):
        client.set_registered_model_alias(name, PREVIOUS, previous.version)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    challenger = by_alias(name, CHALLENGER)
    if challenger is not None and challenger.version == str(version):  # no longer a challenger
        client.delete_registered_model_alias(name, CHALLENGER)
    set_version_tags(name, version, {"rlhf.promotion.reason": reason,
                                     "rlhf.promotion.previous_champion": previous.version if previous else "none",
                                     "rlhf.promotion.by": os.environ.get("USER", "pipeline")})
    return previous if previous is not None and previous.version != str(version) else None


def download(version: Version, dest: str | Path | None = None) -> Path:
    """Local directory of a version's ``save_pretrained`` files (model + tokenizer together)."""
    import shutil
    import tempfile

    root = Path(mlflow.artifacts.download_artifacts(version.source))
    out = Path(dest or tempfile.mkdtemp(prefix=f"{version.name}-v{version.version}-"))
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("model", "components/tokenizer"):
        src = root / sub
        if src.is_dir():
            for f in src.iterdir():
                shutil.copy2(f, out / f.name)
    return out
