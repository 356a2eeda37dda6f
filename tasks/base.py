"""Stage ``base``: bootstrap (char tokenizer + GPT-2 pretrained here) or load the base causal LM."""
from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

from rlhf.params import Params
from tasks.stage import stage_main

STAGE = "base"
MODEL_DIR = Path("models/base")
REPORT_DIR = Path("reports/base")
LM_DIR = Path("data/prepared/lm")


def _read_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run(params: Params, root: Path = Path(".")) -> dict:
    """Build or load the base LM, save it to ``models/base/``; return dev perplexity and timings."""
    from rlhf.compute import resolve_device, stage_accelerator
    from rlhf.distributed import is_main
    from rlhf.models import base_lm
    from rlhf.sampling import sample_completions
    from rlhf.seed import seed_everything
    from rlhf_ops import tracking

    cfg = params.base
    accelerator = stage_accelerator(params.compute, STAGE) if cfg.bootstrap else None
    main = is_main(accelerator)
    seed_everything(params.seed)
    train_texts = _read_lines(root / LM_DIR / "train.txt")
    dev_texts = _read_lines(root / LM_DIR / "dev.txt")
    report_dir = root / REPORT_DIR
    report_dir.mkdir(parents=True, exist_ok=True)

    curve: list[tuple[int, float]] = []
    step_logger = tracking.StepLogger(every=10)

    def on_step(step: int, m: dict) -> None:
        if step % 10 == 0:
            curve.append((step, m["train/loss"]))
        step_logger(step, m)

    if cfg.bootstrap:
        model, tok, summary = base_lm.bootstrap_base(cfg, train_texts, seed=params.seed,
                                                     on_step=on_step if main else None, accelerator=accelerator,
                                                     micro_batches=params.compute.gradient_accumulation_steps)
        if not main:
            return {}
        step_logger.flush()
    else:
        model, tok = base_lm.load_causal_lm(cfg.model)
        if not main:  # a loaded model needs no training: the other workers have nothing to do
            return {}
        summary = {"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": len(tok)}
        model.to(resolve_device(params.compute.device))
    from rlhf.models.positions import max_positions

    max_length = min(cfg.max_length, max_positions(model) or cfg.max_length)  # n_positions or max_position_embeddings
    summary["dev_perplexity"] = base_lm.perplexity(model, tok, dev_texts, max_length=max_length,
                                                   batch_size=cfg.eval_batch_size)

    model_dir = root / MODEL_DIR
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)

    with (report_dir / "train_loss.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "loss"])
        writer.writerows((s, f"{v:.5f}") for s, v in curve)
    prompts = params.data.published_prompts
    completions = sample_completions(model, tok, prompts, n=2, max_new_tokens=cfg.sample_new_tokens, seed=params.seed)
    samples = [p + c for p, cs in zip(prompts, completions) for c in cs]
    lines = ["# Samples from the base model", "", f"`base.model: {cfg.model}`, seed {params.seed}, "
             f"{cfg.sample_new_tokens} new tokens, top_k=0, top_p=1", ""]
    lines += [f"- {s}" for s in samples]
    (report_dir / "samples.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[4:]))

    tracking.log_artifact(report_dir, "reports")
    tracking.log_artifact(model_dir, "model")
    tracking.set_tags({"rlhf.base.model": cfg.model})
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in summary.items()}


if __name__ == "__main__":
    sys.exit(stage_main(STAGE, run, sections=("seed", "base")))
