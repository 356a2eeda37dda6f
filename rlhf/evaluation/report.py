"""Human-readable evaluation outputs: ``samples.md`` and PNG plots.

Plots use matplotlib's object API on an Agg canvas (no pyplot, no global backend switch), so
they render headless and do not disturb a notebook's backend.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rlhf.evaluation.text_metrics import frequent_ngrams

METRIC_LABELS = {
    "judge_score": "judge score (mean)",
    "judge_positive_rate": "judge positive rate",
    "rm_score": "reward model score (mean)",
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
    "repetition_rate": "repetition rate (3-gram)",
    "mean_length": "mean length (chars)",
    "eos_rate": "EOS rate",
    "perplexity": "perplexity under base",
}


def escape_cell(text: Any) -> str:
    """``text`` safe inside a markdown table cell: ``\\`` and ``|`` escaped, line breaks as ``<br>``."""
    s = str(text).replace("\\", "\\\\").replace("|", "\\|")
    return s.replace("\r\n", "<br>").replace("\r", "<br>").replace("\n", "<br>")


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def metrics_table(result: Mapping[str, Any]) -> str:
    """Markdown table: one row per metric, columns base and tuned (``evaluate_policy`` result)."""
    lines = ["| metric | base | tuned |", "|---|---:|---:|"]
    for key, label in METRIC_LABELS.items():
        if key in result["base"]:
            lines.append(f"| {label} | {_fmt(result['base'][key])} | {_fmt(result['tuned'][key])} |")
    lines.append(f"| KL(tuned ‖ base), nats/sample | 0 | {_fmt(result['kl'])} |")
    lines.append(f"| judge win rate of tuned over base | | {_fmt(result['win_rate'])} |")
    yardstick = result.get("yardstick")
    if yardstick:  # rlhf.evaluation.yardstick: a character n-gram LM of real reviews, outside the models
        what = f"char {yardstick['order']}-gram LM of real reviews"
        for key, label in (("perplexity", f"perplexity per char, {what}"),
                           ("real_perplexity", "the same for real reviews of the same lengths"),
                           ("ratio", "ratio samples / real reviews")):
            lines.append(f"| {label} | {_fmt(yardstick['base'][key])} | {_fmt(yardstick['tuned'][key])} |")
    return "\n".join(lines)


def samples_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown side-by-side table, one row per (base sample, tuned sample) pair."""
    has_rm = bool(rows) and "base_rm" in rows[0]
    head = ["#", "group", "prompt", "base sample", "judge", "tuned sample", "judge"]
    head += ["RM base", "RM tuned"] if has_rm else []
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---:", "---", "---", "---", "---:", "---", "---:"]
                                                          + (["---:", "---:"] if has_rm else [])) + "|"]
    for i, r in enumerate(rows):
        cells = [str(i + 1), escape_cell(r["group"]), escape_cell(r["prompt"]),
                 escape_cell(r["base"]) or "*(empty)*", _fmt(float(r["base_judge"])),
                 escape_cell(r["tuned"]) or "*(empty)*", _fmt(float(r["tuned_judge"]))]
        if has_rm:
            cells += [_fmt(float(r["base_rm"])), _fmt(float(r["tuned_rm"]))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def frequent_bigrams_table(rows: Sequence[Mapping[str, Any]], k: int = 10) -> str:
    """Markdown table of the ``k`` character bigrams found in most base and most tuned completions."""
    top = {side: frequent_ngrams([r[side] for r in rows], 2, k) for side in ("base", "tuned")}
    lines = ["| rank | base bigram | share of samples | tuned bigram | share of samples |", "|---:|---|---:|---|---:|"]
    for i in range(max(len(top["base"]), len(top["tuned"]))):
        cells = [str(i + 1)]
        for side in ("base", "tuned"):
            if i < len(top[side]):
                gram, share = top[side][i]
                cells += [escape_cell("".join(map(str, gram))), _fmt(share)]
            else:
                cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def samples_markdown(result: Mapping[str, Any], title: str = "Samples: base model vs tuned policy") -> str:
    """The text of ``samples.md``: overall metrics, per-group metrics, then every sample pair side by side."""
    parts = [f"# {title}", "",
             f"{result['n_samples']} sample pairs over {result['n_prompts']} prompts, seed {result['seed']}; "
             f"the same prompts and random stream for both models. Judge and RM read prompt + completion.",
             "", "## Overall", "", metrics_table(result)]
    for group, res in result.get("groups", {}).items():
        parts += ["", f"## Group `{escape_cell(group)}` ({res['n_samples']} pairs)", "", metrics_table(res)]
    parts += ["", "## Most frequent bigrams", "",
              "Character bigrams by the share of completions containing them. One phrase in most tuned "
              "completions (and not in the base's) is the policy exploiting what the reward model likes.",
              "", frequent_bigrams_table(result["rows"]),
              "", "## Samples", "", samples_table(result["rows"]), ""]
    return "\n".join(parts)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def plot_judge_histogram(base_scores: Sequence[float], tuned_scores: Sequence[float], path: str | Path,
                         bins: int = 20) -> Path:
    """Overlaid histograms of judge scores in [0, 1], base vs tuned; returns ``path`` (PNG)."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    edges = [i / bins for i in range(bins + 1)]
    ax.hist(list(base_scores), bins=edges, alpha=0.55, label=f"base (mean {_mean(base_scores):.3f})")
    ax.hist(list(tuned_scores), bins=edges, alpha=0.55, label=f"tuned (mean {_mean(tuned_scores):.3f})")
    ax.set_xlabel("judge P(positive)")
    ax.set_ylabel("samples")
    ax.set_title("Judge scores of samples")
    ax.legend()
    return _save(fig, Path(path))


def _mean(xs: Sequence[float]) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def plot_ppo_curves(history: Sequence[Mapping[str, float]], out_dir: str | Path,
                    curves: Mapping[str, str] | None = None) -> dict[str, Path]:
    """One PNG per PPO metric against iteration, from per-iteration metric dicts.

    ``curves`` maps a metric key to a file stem; default ``objective/scores`` -> ``ppo_reward``,
    ``objective/kl`` -> ``ppo_kl``. A metric absent from every iteration gets no plot.
    Returns {file stem: path}.
    """
    curves = curves or {"objective/scores": "ppo_reward", "objective/kl": "ppo_kl"}
    out: dict[str, Path] = {}
    for key, stem in curves.items():
        points = [(i, float(h[key])) for i, h in enumerate(history) if key in h]
        if not points:
            continue
        fig = Figure(figsize=(6, 4))
        ax = fig.add_subplot()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3)
        ax.set_xlabel("PPO iteration")
        ax.set_ylabel(key)
        ax.set_title(f"{key} per iteration")
        ax.grid(alpha=0.3)
        out[stem] = _save(fig, Path(out_dir) / f"{stem}.png")
    return out


def write_report(result: Mapping[str, Any], out_dir: str | Path,
                 ppo_history: Sequence[Mapping[str, float]] | None = None) -> dict[str, Path]:
    """Write ``samples.md``, ``judge_hist.png`` and (given PPO history) ``ppo_reward.png`` / ``ppo_kl.png``.

    Returns {name: path}: ``samples_md``, ``judge_hist``, and ``ppo_reward`` / ``ppo_kl`` when plotted.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "samples.md"
    md.write_text(samples_markdown(result), encoding="utf-8")
    paths: dict[str, Path] = {"samples_md": md}
    rows = result["rows"]
    paths["judge_hist"] = plot_judge_histogram([r["base_judge"] for r in rows], [r["tuned_judge"] for r in rows],
                                               out_dir / "judge_hist.png")
    if ppo_history:
        paths.update(plot_ppo_curves(ppo_history, out_dir))
    return paths
