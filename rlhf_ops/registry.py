"""The MLflow model registry: register a stage's model, champion/challenger aliases, promotion.

A new version gets alias ``challenger``; it becomes ``champion`` only when an evaluation on the
same data beats the current champion (the first version becomes champion). Every decision is
written on the version as tags (``rlhf.promotion.*``) so ``rlhf compare`` and the UI show it.

A version is named the same way everywhere (``rlhf generate/score --model``, ``rlhf label --model``):
``registry:NAME``, ``registry:NAME@ALIAS`` or ``registry:NAME@VERSION`` (:func:`parse_spec`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from rlhf.files import dir_hash
from rlhf_ops import tracking

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous-champion"
# Model names in the registry, per pipeline role.
REWARD_MODEL, POLICY = "reward-model", "policy"
TASK_OF = {REWARD_MODEL: "text-classification", POLICY: "text-generation"}
# Files of a model directory that are neither the model nor its tokenizer (reward_stats.json, the
# reward model's training config, the policy's value head): logged in the version's run under this
# path, tagged on the version, and put back beside the model by :func:`download`.
SIDE_FILES_PATH = "side_files"
SIDE_FILES_TAG = "rlhf.side_files"
SIDE_FILES = ("reward_stats.json", "reward_model_config.json", "value_head.safetensors")


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


# --- naming a version: registry:NAME[@ALIAS|@VERSION] ----------------------------------------------
SPEC_PREFIX = "registry:"
SPEC_FORMS = ("registry:NAME (its champion), registry:NAME@ALIAS or registry:NAME@VERSION "
              "(e.g. registry:policy@champion, registry:reward-model@3)")
_SPEC = re.compile(r"(?P<name>[A-Za-z0-9][\w.-]*)(?:(?P<sep>[@/])(?P<ref>[\w-]+))?")
_VERSION = re.compile(r"v?(?P<number>[0-9]+)")


@dataclass(frozen=True)
class ModelRef:
    """A version of a registered model as a spec names it: by alias or by version number (one of the two)."""

    name: str
    alias: str | None = None
    version: str | None = None

    def describe(self) -> str:
        return f"version {self.version}" if self.version is not None else f"alias {self.alias!r}"


def parse_spec(spec: str) -> ModelRef:
    """``registry:NAME[@ALIAS|@VERSION]`` as a :class:`ModelRef`; ``ValueError`` naming the spec otherwise.

    No ``@`` means the ``champion`` alias; a reference of digits (or ``v`` and digits, as
    ``rlhf promote`` takes them) is a version number, anything else an alias. The older
    ``registry:NAME/VERSION`` is still read (VERSION must then be a number).
    """
    match = _SPEC.fullmatch(spec[len(SPEC_PREFIX):]) if spec.startswith(SPEC_PREFIX) else None
    ref = match and match["ref"]
    number = _VERSION.fullmatch(ref) if ref else None
    if match is None or (match["sep"] == "/" and number is None):
        raise ValueError(f"model spec {spec!r}: expected {SPEC_FORMS}")
    if ref is None:
        return ModelRef(match["name"], alias=CHAMPION)
    if number is not None:
        return ModelRef(match["name"], version=str(int(number["number"])))
    return ModelRef(match["name"], alias=ref)


def resolve_spec(spec: str) -> Version:
    """The registered version ``spec`` names (:func:`parse_spec`).

    ``ValueError`` for a malformed spec; ``FileNotFoundError`` naming the spec and the versions
    there are when the registry has no such version or alias.
    """
    ref = parse_spec(spec)
    versions = all_versions(ref.name)
    found = next((v for v in versions if (v.version == ref.version if ref.version is not None
                                          else ref.alias in v.aliases)), None)
    if found is None:
        known = ", ".join(f"v{v.version}" + (f" ({', '.join(v.aliases)})" if v.aliases else "") for v in versions)
        raise FileNotFoundError(f"{spec}: the MLflow registry has no {ref.describe()} of {ref.name!r} "
                                f"(registered: {known or 'none'})")
    return found


def find_version(name: str, *, tag: str, value: str) -> Version | None:
    """The newest version of ``name`` whose tag ``tag`` equals ``value``."""
    hits = [v for v in tracking.model_versions(name) if (v.tags or {}).get(tag) == value]
    return _version(max(hits, key=lambda v: int(v.version))) if hits else None


def by_alias(name: str, alias: str) -> Version | None:
    mv = tracking.model_version_by_alias(name, alias)
    return _version(mv) if mv is not None else None


def all_versions(name: str) -> list[Version]:
    """Every version of ``name``, newest first (aliases filled in)."""
    return sorted((_version(tracking.model_version(name, v.version)) for v in tracking.model_versions(name)),
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
    model_uri = tracking.log_transformers_model(model, tokenizer, name.replace("-", "_"), TASK_OF[name], requirements)
    for artifact_path, path in (extra_artifacts or {}).items():
        tracking.log_artifact(path, artifact_path=artifact_path)
    side = [f for f in SIDE_FILES if (model_dir / f).is_file()]
    for f in side:
        tracking.log_artifact(model_dir / f, artifact_path=f"{SIDE_FILES_PATH}/{name}")
    side_tag = {SIDE_FILES_TAG: ",".join(side)} if side else {}
    version = tracking.register_model(model_uri, name, {"rlhf.model_hash": digest, **side_tag, **(tags or {})})
    tracking.set_model_alias(name, CHALLENGER, version)
    return _version(tracking.model_version(name, version)), True


def set_version_tags(name: str, version: str, tags: Mapping[str, Any]) -> None:
    tracking.set_model_version_tags(name, version, tags)


def promote(name: str, version: str, *, reason: str) -> Version | None:
    """Move ``champion`` to ``version``; the previous champion keeps alias ``previous-champion``.

    Returns the previous champion (``None`` when there was none or it is the same version).
    """
    previous = by_alias(name, CHAMPION)
    if previous is not None and previous.version != str(version):
        tracking.set_model_alias(name, PREVIOUS, previous.version)
    tracking.set_model_alias(name, CHAMPION, str(version))
    challenger = by_alias(name, CHALLENGER)
    if challenger is not None and challenger.version == str(version):  # no longer a challenger
        tracking.delete_model_alias(name, CHALLENGER)
    set_version_tags(name, version, {"rlhf.promotion.reason": reason,
                                     "rlhf.promotion.previous_champion": previous.version if previous else "none",
                                     "rlhf.promotion.by": os.environ.get("USER", "pipeline")})
    return previous if previous is not None and previous.version != str(version) else None


def download(version: Version, dest: str | Path | None = None) -> Path:
    """Local directory of a version's ``save_pretrained`` files (model + tokenizer together), with the
    side files (reward statistics, value head) registered beside them."""
    import shutil
    import tempfile

    root = tracking.download_artifacts(version.source)
    out = Path(dest or tempfile.mkdtemp(prefix=f"{version.name}-v{version.version}-"))
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("model", "components/tokenizer"):
        src = root / sub
        if src.is_dir():
            for f in src.iterdir():
                shutil.copy2(f, out / f.name)
    side = [f for f in version.tags.get(SIDE_FILES_TAG, "").split(",") if f]
    if side and version.run_id:
        folder = tracking.download_artifacts(f"runs:/{version.run_id}/{SIDE_FILES_PATH}/{version.name}")
        for f in side:
            if (folder / f).is_file():
                shutil.copy2(folder / f, out / f)
    return out
