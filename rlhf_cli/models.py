"""Which model a CLI command uses: ``--model PATH``, or the registry's champion, or the stage output."""
from __future__ import annotations

from pathlib import Path

from rlhf_ops.environment import find_project_root

FALLBACK = {"reward-model": Path("models/reward_model"), "policy": Path("models/policy")}


def resolve_model_dir(name: str, model: str | None) -> tuple[Path, str]:
    """``(directory, description)`` of the model to load for registry model ``name``.

    ``model``: a directory, a registry spec (``registry:NAME``, ``registry:NAME@ALIAS``,
    ``registry:NAME@VERSION``; :func:`rlhf_ops.registry.parse_spec`), or None for the champion
    (falling back to the stage's output directory when nothing is registered).
    """
    if model and not model.startswith("registry:"):
        path = Path(model)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"--model {model}: no config.json there; expected a directory written by "
                                    "save_pretrained (e.g. models/policy) or registry:NAME@ALIAS")
        return path, str(path)
    from rlhf_ops import registry  # MLflow: imported only when the registry is asked

    if model:
        found = registry.resolve_spec(model)  # ValueError (malformed) or FileNotFoundError (no such version)
        ref = registry.parse_spec(model)
        how = "pinned" if ref.version is not None else ref.alias
        return registry.download(found), f"registry {found.name} v{found.version} ({how})"
    found = registry.by_alias(name, registry.CHAMPION)
    if found is not None:
        return registry.download(found), f"registry {name} v{found.version} ({registry.CHAMPION})"
    local = find_project_root() / FALLBACK[name]
    if (local / "config.json").is_file():
        return local, f"{FALLBACK[name]} (no {name} champion registered yet)"
    raise FileNotFoundError(f"no {name} model: nothing registered as {name}@champion and no {FALLBACK[name]}; "
                            "run the pipeline (rlhf run) or pass --model PATH")
