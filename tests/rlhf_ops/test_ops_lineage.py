"""rlhf_ops.lineage computes the md5s DVC writes to dvc.lock (files, directories, .dvcignore honoured)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from rlhf_ops import lineage

DVC_YAML = """\
stages:
  train:
    cmd: python -c "open('out.txt', 'w').write('x')"
    deps:
      - data
      - code.py
    params:
      - seed
      - ppo.lr
    outs:
      - out.txt
      - report.md:
          cache: false
    metrics:
      - metrics.json:
          cache: false
"""

# What `dvc repro` runs here: the DVC_YAML stage without its uncached outs.
REPRO_YAML = """\
stages:
  train:
    cmd: python -c "open('out.txt', 'w').write('x')"
    deps: [data, code.py]
    params: [seed, ppo.lr]
    outs: [out.txt]
"""


def test_hashes_match_dvc_lock(tmp_path: Path):
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "a.txt").write_text("a\r\nline\n")  # CRLF: DVC 3 hashes bytes as they are
    (tmp_path / "data" / "sub" / "评论.jsonl").write_text('{"text": "很好"}\n', encoding="utf-8")
    (tmp_path / "data" / "empty").write_bytes(b"")
    (tmp_path / "data" / "__pycache__").mkdir()
    (tmp_path / "data" / "__pycache__" / "x.pyc").write_bytes(b"\0\1")  # ignored by .dvcignore
    (tmp_path / "code.py").write_text("print(1)\n")
    (tmp_path / "params.yaml").write_text("seed: 3\nppo:\n  lr: 0.1\n  other: 2\n")
    (tmp_path / "dvc.yaml").write_text(REPRO_YAML)
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".dvcignore").write_text("__pycache__/\n")
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    locked = yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]["train"]
    lock = {d["path"]: d["md5"] for d in locked["deps"]}
    assert set(lock) == {"data", "code.py"} and lock["data"].endswith(".dir")
    assert lineage.hashes(tmp_path, lineage.stage_deps(tmp_path, "train")) == lock
    lock_outs = {o["path"]: o["md5"] for o in locked["outs"]}
    assert lineage.hashes(tmp_path, lineage.stage_outs(tmp_path, "train")) == {"out.txt": lock_outs["out.txt"]}


def test_stage_entries(tmp_path: Path):
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    assert lineage.stage_deps(tmp_path, "train") == ["data", "code.py"]
    assert lineage.stage_outs(tmp_path, "train") == ["out.txt", "report.md"]  # not the metrics file
    assert lineage.stage_param_keys(tmp_path, "train") == ["seed", "ppo.lr"]
    assert lineage.stage_deps(tmp_path, "nope") == []
    assert lineage.is_code(tmp_path, "code.py") and lineage.is_code(tmp_path, "pkg/sub")
    assert not lineage.is_code(tmp_path, "data/prepared")
    assert lineage.hashes(tmp_path, ["missing"]) == {}
    assert lineage.combined_hash({"b": "2", "a": "1"}) == lineage.combined_hash({"a": "1", "b": "2"})
