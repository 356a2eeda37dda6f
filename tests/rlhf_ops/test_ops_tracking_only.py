"""One module talks to MLflow: no package module but ``rlhf_ops/tracking.py`` imports ``mlflow``."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("rlhf", "rlhf_ops", "tasks", "flows", "labeler", "rlhf_cli")
THE_ONE = "rlhf_ops/tracking.py"


def mlflow_imports(path: Path) -> list[str]:
    """``line: statement`` of every import of ``mlflow`` (or a submodule) anywhere in ``path``, lazy ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        if any(name == "mlflow" or name.startswith("mlflow.") for name in names):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_only_tracking_imports_mlflow():
    offenders = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel != THE_ONE and (hits := mlflow_imports(path)):
                offenders[rel] = hits
    assert not offenders, f"only {THE_ONE} may import mlflow; route these through it: {offenders}"


def test_the_check_sees_imports(tmp_path: Path):
    assert mlflow_imports(REPO / THE_ONE)  # the one module does import it
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from mlflow.tracking import MlflowClient\n    import os, mlflow\n"
                      "from mlflow_other import x\n")
    assert [h.split(":")[0] for h in mlflow_imports(module)] == ["2", "3"]
