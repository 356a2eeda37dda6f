"""Stage ``prepare``: corpus / rank lists / human labels -> splits, rank lists, prompts, LM corpus."""
from __future__ import annotations

import sys
from pathlib import Path

from rlhf.params import Params
from tasks.stage import stage_main

STAGE = "prepare"
OUT_DIR = Path("data/prepared")


def run(params: Params, root: Path = Path(".")) -> dict:
    """Validate, clean and split the input; write ``data/prepared/``; return counts and rejects."""
    from rlhf.data.prepare import prepare_data
    from rlhf_ops import tracking

    out_dir = root / OUT_DIR
    metrics = prepare_data(params.data, out_dir, seed=params.seed, project_root=root)
    tracking.log_artifact(out_dir / "prompts.jsonl", "prepared")
    for split in ("train", "dev", "test"):
        tracking.log_artifact(out_dir / "ranklists" / f"{split}.jsonl", "prepared/ranklists")
    return metrics


if __name__ == "__main__":
    sys.exit(stage_main(STAGE, run, sections=("seed", "data")))
