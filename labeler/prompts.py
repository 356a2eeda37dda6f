"""The prompt pool the app serves: ``data/prepared/prompts.jsonl`` written by the ``prepare`` stage."""
from __future__ import annotations

import json
from pathlib import Path

from rlhf.data.config import PUBLISHED_PROMPTS

POOL_SPLITS = ("train", "test", "all")


def load_prompt_pool(path: str | Path, split: str = "train") -> tuple[list[str], str]:
    """Prompts of ``split`` (``all``: every split) from the pool file, in file order, without repeats.

    Lines are ``{"prompt": str, "source": ..., "split": "train"|"test"}``. Labelling defaults to
    train prompts: human labels join the train split, and test prompts stay unseen for evaluation.
    Returns ``(prompts, where)``; when the file is missing, the published prompts and a note saying so.
    Raises ``ValueError`` naming the file and line of a bad line.
    """
    if split not in POOL_SPLITS:
        raise ValueError(f"prompt split {split!r}; expected one of {', '.join(POOL_SPLITS)}")
    path = Path(path)
    if not path.is_file():
        return list(PUBLISHED_PROMPTS), f"{path} not found (run the prepare stage): using the 4 published prompts"
    prompts: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            prompt, record_split = record["prompt"], record.get("split", "train")
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{number}: expected {{\"prompt\": ..., \"split\": ...}}: {e}") from None
        if isinstance(prompt, str) and prompt.strip() and split in ("all", record_split):
            prompts.append(prompt)
    prompts = list(dict.fromkeys(prompts))
    return prompts, f"{len(prompts)} {split} prompts from {path}"
