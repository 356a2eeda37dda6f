"""`dvc.yaml` lists, as deps of each stage, every project file that stage's code reaches.

DVC decides from `dvc.lock` whether a stage is up to date; an edit to a library file that the
stage imports but does not list leaves the stage "up to date" with outputs of the old code. The
graph is walked from `tasks/<stage>.py` over every `import` / `from ... import` in the project's
packages, including imports inside functions (lazy imports are uses too).

Left out of the check, on purpose:
- package ``__init__.py`` files (re-exports; the modules they import are followed and checked);
- configuration modules (``rlhf/config.py``, ``rlhf/params.py``, ``*/config.py``): every stage
  reaches all of them through the params loader, and what they hold reaches DVC as params.
"""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("rlhf", "tasks", "rlhf_ops")



def _expanded_stages() -> dict:
    """dvc.yaml's stages, a ``foreach`` stage once per item as DVC names it (``train_policy@grpo``)."""
    stages = {}
    for name, entry in yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"].items():
        if "foreach" not in entry:
            stages[name] = entry
            continue
        for item in entry["foreach"]:
            text = yaml.safe_dump(entry["do"]).replace("${item}", str(item))
            stages[f"{name}@{item}"] = yaml.safe_load(text)
    return stages


STAGES = _expanded_stages()


def stage_module(stage_name: str) -> Path:
    """``tasks/<stage>.py`` of a stage or of a foreach item (``train_policy@grpo`` -> ``tasks/train_policy.py``)."""
    return REPO / "tasks" / f"{stage_name.split('@')[0]}.py"


def exempt(rel: str) -> bool:
    name = Path(rel).name
    return name == "__init__.py" or name == "config.py" or rel in ("rlhf/params.py",)


def module_file(module: str) -> Path | None:
    """The file of a project module (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``), None if not ours."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, module_level_only: bool = False) -> tuple[set[str], set[str]]:
    """``(modules named by an import statement in path, their parent packages)``.

    Every import counts, those inside functions too, unless ``module_level_only`` (for a package
    ``__init__`` run only because one of its submodules was imported: Python executes its
    module-level statements, not the bodies of its functions).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(REPO).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + ".__init__"
    found: set[str] = set()
    nodes = tree.body if module_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[:-node.level]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    parents = set()
    for name in found:
        parts = name.split(".")
        parents.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return found, parents - found


def reached_files(start: Path) -> set[str]:
    """Project files (relative paths) reached from ``start`` through imports, ``start`` included."""
    seen: dict[Path, bool] = {}  # file -> whether all its imports were followed (else module-level ones)
    todo = [(start, False)]
    while todo:
        path, only_module_level = todo.pop()
        if path in seen and (not seen[path] or only_module_level):
            continue
        seen[path] = not only_module_level
        named, parents = imported_modules(path, module_level_only=only_module_level)
        for modules, parent_only in ((named, False), (parents, True)):
            for module in modules:
                target = module_file(module)
                if target is not None:
                    todo.append((target, parent_only and target.name == "__init__.py"))
    return {p.relative_to(REPO).as_posix() for p in seen}


def dep_paths(stage: dict) -> list[str]:
    return [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]


def covered(rel: str, deps: list[str]) -> bool:
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


def uncovered(stage_name: str) -> list[str]:
    reached = reached_files(stage_module(stage_name))
    deps = dep_paths(STAGES[stage_name])
    return sorted(f for f in reached if not exempt(f) and not covered(f, deps))


@pytest.mark.parametrize("stage_name", sorted(STAGES))
def test_stage_deps_cover_every_reached_project_file(stage_name):
    missing = uncovered(stage_name)
    assert not missing, (f"dvc.yaml stage {stage_name!r} reaches these files through imports but does not list "
                         f"them (or a directory holding them) as deps: {missing}")


def test_foreach_stage_items_are_checked():
    """``train_policy`` (foreach) is checked once per item, against tasks/train_policy.py."""
    assert {"train_policy@grpo", "train_policy@rloo", "train_policy@dpo"} <= set(STAGES)
    assert "models/policy_grpo" in STAGES["train_policy@grpo"]["outs"]
    assert "rlhf/algorithms/online.py" in reached_files(stage_module("train_policy@grpo"))


def test_walker_sees_imports_inside_functions(tmp_path):
    """The walker must follow a lazy import: tasks/ppo.py imports the trainer inside run()."""
    reached = reached_files(REPO / "tasks" / "ppo.py")
    assert "rlhf/ppo/trainer.py" in reached
    assert "tasks/stage.py" in reached


def test_uncovered_file_is_reported(monkeypatch):
    """Dropping a dep the stage needs makes the check fail (the check can fail)."""
    stage = dict(STAGES["ppo"])
    stage["deps"] = [d for d in dep_paths(stage) if not d.startswith("rlhf/ppo")]
    monkeypatch.setitem(STAGES, "ppo", stage)
    assert any(f.startswith("rlhf/ppo/") for f in uncovered("ppo"))


def _stub_outputs(project: Path) -> None:
    """Empty stand-ins for every stage output, so `dvc commit` can record a lock without running anything."""
    def stub(path: Path) -> None:  # a file when the name has a suffix, else a directory holding one
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("stub\n", encoding="utf-8")
        else:
            path.mkdir(parents=True, exist_ok=True)
            (path / "stub").write_text("stub\n", encoding="utf-8")

    for stage in STAGES.values():
        for key in ("outs", "metrics", "plots"):
            for out in stage.get(key, []):
                stub(project / (out if isinstance(out, str) else next(iter(out))))
        for dep in dep_paths(stage):  # data deps inside another stage's output directory
            if not (project / dep).exists() and dep.startswith("data/"):
                stub(project / dep)


def _dvc(project: Path, *args: str) -> str:
    dvc = Path(sys.executable).parent / "dvc"
    proc = subprocess.run([str(dvc), *args], cwd=project, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_editing_a_reached_library_file_makes_dvc_report_the_stage_changed(tmp_path):
    """For each stage, append a comment to one `rlhf/` file it reaches: `dvc status` names the stage."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy2(REPO / name, project / name)
    for name in (*PACKAGES, "data/labels"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    _dvc(project, "init", "-q")
    _stub_outputs(project)
    _dvc(project, "commit", "-f", "-q")
    assert json.loads(_dvc(project, "status", "--json")) == {}, "freshly committed stubs should be up to date"
    for stage_name in sorted(STAGES):
        reached = sorted(f for f in reached_files(stage_module(stage_name))
                         if f.startswith("rlhf/") and not exempt(f))
        # a file specific to the stage where there is one (the last reached file in path order)
        target = project / reached[-1]
        original = target.read_text(encoding="utf-8")
        target.write_text(original + "\n# edited by test_dvc_deps\n", encoding="utf-8")
        try:
            status = json.loads(_dvc(project, "status", stage_name, "--json"))
            changed = status.get(stage_name, [])
            assert any(reached[-1] in entry.get("changed deps", {}) or
                       any(reached[-1].startswith(d + "/") for d in entry.get("changed deps", {}))
                       for entry in changed if isinstance(entry, dict)), (
                f"editing {reached[-1]} did not make `dvc status` report stage {stage_name!r} changed: {status}")
        finally:
            target.write_text(original, encoding="utf-8")
