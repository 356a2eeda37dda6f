"""File hashes shared by stages, the registry, data lineage and the labelling app (the one place for md5s)."""
from __future__ import annotations

import hashlib
from pathlib import Path


def file_md5(path: str | Path) -> str:
    """md5 of a file's bytes, read in 1 MiB blocks (the value ``dvc.lock`` records for a file)."""
    digest = hashlib.md5()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dir_hash(path: str | Path) -> str:
    """md5 over the files of a directory (relative names and bytes, in sorted order).

    Identifies a saved model: the registry tags versions with it (``rlhf.model_hash``), so the
    same files are never registered twice and a directory can be matched to its version.
    """
    root = Path(path)
    digest = hashlib.md5()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode())
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
