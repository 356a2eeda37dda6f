"""Which model a CLI command uses: ``--model PATH``, or the registry's champion, or the stage output."""
from __future__ import annotations

from pathlib import Path

from tasks.environment import find_project_root

FALLBACK = {"reward-model": Path("models/reward_model"), "policy": Path("models/policy")}


def resolve_model_dir(name: str, model: str | None) -> tuple[Path, str]:
    """``(directory, description)`` of the model to load for registry model ``name``.

    ``model``: a directory, ``registry:NAME@ALIAS`` / ``registry:NAME/VERSION``, or None for
    the champion (falling back to the stage's output directory when nothing is registered).
    """
    if model and not model.startswith("registry:"):
        path = Path(model)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"--model {model}: no config.json there; expected a directory written by "
                                    "save_pretrained (e.g. models/policy) or registry:NAME@ALIAS")
        return path, str(path)
    from tasks import registry

    alias, version = registry.CHAMPION, None
    if model:
        spec = model[len("registry:"):]
        if "@" in spec:
            name, alias = spec.split("@", 1)
        elif "/" in spec:
            name, version = spec.split("/", 1)
        else:
            name = spec
    found = None
    if version is not None:
        found = next((v for v in registry.all_versions(name) if v.version == version), None)
    else:
        found = registry.by_alias(name, alias)
    if found is not None:
        return registry.download(found), f"registry {name} v{found.version} ({alias if version is None else 'pinned'})"
    if model:
        raise FileNotFoundError(f"--model {model}: no such version in the MLflow registry "
                                f"({'alias ' + alias if version is None else 'version ' + version} of {name!r})")
    local = find_project_root() / FALLBACK[name]
    if (local / "config.json").is_file():
        return local, f"{FALLBACK[name]} (no {name} champion registered yet)"
    raise FileNotFoundError(f"no {name} model: nothing registered as {name}@champion and no {FALLBACK[name]}; "
                            "run the pipeline (rlhf run) or pass --model PATH")
