"""What a stage read and wrote, as DVC sees it: the deps and outs of ``dvc.yaml`` and their md5s.

The hashes are DVC 3's own (the values ``dvc.lock`` records): a file's md5, and for a directory the
md5 of its sorted ``[{"md5", "relpath"}]`` listing as JSON plus ``.dir``, ``.dvcignore`` honoured.
Computing them in the stage process (before and after the stage's work) tags every MLflow stage run
with its data version, whether ``rlhf run``, ``dvc repro`` or ``dvc exp run`` started it.
No MLflow, Prefect or DVC imports here (a stage process pays for none of them).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

import yaml

from rlhf.files import file_md5

# Always ignored inside a DVC-tracked directory, besides the patterns of the root .dvcignore.
DVC_DEFAULT_IGNORE = (".hg/", ".git/", ".git", ".dvc/")


def _substitute(node, item: str):
    if isinstance(node, str):
        return node.replace("${item}", item)
    if isinstance(node, list):
        return [_substitute(n, item) for n in node]
    if isinstance(node, dict):
        return {_substitute(k, item): _substitute(v, item) for k, v in node.items()}
    return node


def foreach_items(entry: dict) -> list[str] | None:
    """The items of a ``foreach`` stage (a list of names; ``None`` for a plain stage)."""
    items = entry.get("foreach") if isinstance(entry, dict) and "do" in entry else None
    return [str(i) for i in items] if isinstance(items, list) else None


def dvc_stages(root: Path, *, groups: bool = False) -> dict[str, dict]:
    """The stages of ``root/dvc.yaml`` in file order, a ``foreach`` stage expanded as DVC expands it.

    Each item of ``name: {foreach: [a, b], do: {...}}`` is ``name@a``, ``name@b`` (``${item}``
    substituted); with ``groups=True`` the stage is one entry ``name`` instead, whose lists (deps,
    outs, metrics, plots, params) are those of all its items together.
    """
    path = root / "dvc.yaml"
    if not path.is_file():
        return {}
    out: dict[str, dict] = {}
    for name, entry in ((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stages") or {}).items():
        items = foreach_items(entry)
        if items is None:
            out[name] = entry or {}
            continue
        expanded = {f"{name}@{item}": _substitute(entry["do"], item) for item in items}
        if not groups:
            out.update(expanded)
            continue
        merged: dict = {"foreach": items}
        for one in expanded.values():
            for key, value in one.items():
                if isinstance(value, list):
                    merged.setdefault(key, [])
                    merged[key] += [v for v in value if v not in merged[key]]
                else:
                    merged.setdefault(key, value)
        out[name] = merged
    return out


def _stage_entry(root: Path, stage: str) -> dict:
    """``stage``'s entry: a plain stage, a foreach item (``name@item``) or a foreach stage's items together."""
    return dvc_stages(root).get(stage) or dvc_stages(root, groups=True).get(stage) or {}


def _paths(entries: Iterable) -> list[str]:
    """Paths of a dvc.yaml list whose items are ``path`` or ``{path: {options}}``."""
    out = []
    for entry in entries or []:
        out.extend([entry] if isinstance(entry, str) else list(entry))
    return out


def stage_deps(root: Path, stage: str) -> list[str]:
    """The ``deps`` of ``stage`` in ``dvc.yaml`` (empty when there is no such stage)."""
    return _paths(_stage_entry(root, stage).get("deps"))


def stage_outs(root: Path, stage: str) -> list[str]:
    """The ``outs`` of ``stage`` (not its metrics and plots files)."""
    return _paths(_stage_entry(root, stage).get("outs"))


def stage_param_keys(root: Path, stage: str) -> list[str]:
    """The ``params.yaml`` keys ``stage`` depends on (``seed``, ``ppo``, ``eval.judge``...)."""
    keys: list[str] = []
    for entry in _stage_entry(root, stage).get("params") or []:
        if isinstance(entry, str):
            keys.append(entry)
        elif isinstance(entry, dict):  # {other_params_file: [keys]}: only params.yaml is read here
            keys.extend(k for file, ks in entry.items() if file == "params.yaml" for k in (ks or []))
    return keys


def is_code(root: Path, path: str) -> bool:
    """A dep that is source code (``*.py`` or inside a Python package), not data or a model."""
    first = Path(path).parts[0] if Path(path).parts else ""
    return path.endswith(".py") or (root / first / "__init__.py").is_file()


def _ignore_spec(root: Path):
    import pathspec

    lines = list(DVC_DEFAULT_IGNORE)
    ignore_file = root / ".dvcignore"
    if ignore_file.is_file():
        lines += ignore_file.read_text(encoding="utf-8").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def dvc_md5(root: Path, path: str, spec=None) -> str | None:
    """DVC's md5 of ``root/path`` as ``dvc.lock`` writes it; ``None`` when it does not exist."""
    target = root / path
    if target.is_file():
        return file_md5(target)
    if not target.is_dir():
        return None
    spec = spec or _ignore_spec(root)
    entries = []
    for dirpath, dirnames, filenames in os.walk(target):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        dirnames[:] = [d for d in dirnames if not spec.match_file(f"{rel_dir}/{d}/")]
        for name in filenames:
            rel = f"{rel_dir}/{name}"
            if not spec.match_file(rel):
                entries.append({"md5": file_md5(Path(dirpath) / name),
                                "relpath": Path(dirpath, name).relative_to(target).as_posix()})
    entries.sort(key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def hashes(root: Path, paths: Iterable[str]) -> dict[str, str]:
    """``{path: md5}`` of the paths that exist."""
    spec = _ignore_spec(root)
    out = {}
    for path in paths:
        md5 = dvc_md5(root, path, spec)
        if md5 is not None:
            out[path] = md5
    return out


def combined_hash(hashes_by_path: dict[str, str]) -> str:
    """One md5 over ``path md5`` lines, sorted: the version of a set of inputs."""
    text = "\n".join(f"{p} {h}" for p, h in sorted(hashes_by_path.items()))
    return hashlib.md5(text.encode("utf-8")).hexdigest()
