"""Resumable PPO checkpoints, written atomically.

A checkpoint is a directory ``<checkpoint_dir>/iter_000010/`` holding the policy (LM with
``save_pretrained`` + ``value_head.safetensors``) and ``trainer_state.pt``: optimiser, KL
controller, every RNG state (Python, NumPy, torch, the prompt sampler's), the reward
function's state (e.g. running score statistics), the iteration and the metric history. It is
written to a hidden temporary directory first and renamed into place, so a crash mid-write
leaves the previous checkpoint intact and never a half-written one.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from rlhf.ppo.model import VALUE_HEAD_FILE, PolicyWithValueHead

TRAINER_STATE_FILE = "trainer_state.pt"
_NAME = re.compile(r"^iter_(\d{6,})$")


def checkpoint_name(iteration: int) -> str:
    return f"iter_{iteration:06d}"


def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest iteration under ``checkpoint_dir``, if any."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in checkpoint_dir.iterdir()
             if (m := _NAME.match(p.name)) and (p / TRAINER_STATE_FILE).exists()]
    return max(found)[1] if found else None


def _portable_rng(state: dict) -> dict:
    """RNG states as tensors and plain data (loadable with ``torch.load(weights_only=True)``)."""
    kind, keys, pos, has_gauss, cached = state["numpy"]
    out = dict(state)
    out["numpy"] = (kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached)
    return out


def _native_rng(state: dict) -> dict:
    kind, keys, pos, has_gauss, cached = state["numpy"]
    out = dict(state)
    out["numpy"] = (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
    return out


def save_checkpoint(checkpoint_dir: str | Path, iteration: int, policy: PolicyWithValueHead,
                    trainer_state: dict[str, Any], *, keep_last: int = 1) -> Path:
    """Write checkpoint ``iteration`` atomically; keep only the newest ``keep_last`` checkpoints."""
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / checkpoint_name(iteration)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=checkpoint_dir))
    try:
        policy.save_pretrained(tmp)
        state = dict(trainer_state)
        state["rng"] = _portable_rng(state["rng"])
        torch.save(state, tmp / TRAINER_STATE_FILE)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    older = sorted((int(m.group(1)), p) for p in checkpoint_dir.iterdir() if (m := _NAME.match(p.name)))
    for _, path in older[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)
    return final


def load_checkpoint(path: str | Path, policy: PolicyWithValueHead) -> dict[str, Any]:
    """Load the weights of checkpoint ``path`` into ``policy`` (in place) and return its trainer state."""
    path = Path(path)
    lm_file = path / "model.safetensors"
    if not lm_file.exists():
        raise FileNotFoundError(f"{path}: checkpoint has no model.safetensors")
    lm_state = load_file(str(lm_file))
    missing, unexpected = policy.lm.load_state_dict(lm_state, strict=False)
    # Tied weights (GPT-2's lm_head = wte) are saved once; anything else missing is an error.
    tied = {k for k in missing if k.endswith("lm_head.weight")}
    if set(missing) - tied or unexpected:
        raise ValueError(f"{lm_file}: weights do not fit the policy (missing {sorted(set(missing) - tied)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]})")
    policy.value_head.load_state_dict(load_file(str(path / VALUE_HEAD_FILE)))
    state = torch.load(path / TRAINER_STATE_FILE, map_location="cpu", weights_only=True)
    state["rng"] = _native_rng(state["rng"])
    return state
