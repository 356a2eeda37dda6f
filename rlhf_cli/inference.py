"""``rlhf score`` and ``rlhf generate``: use the trained models from the terminal."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table


def bounded(kind: type, name: str, *, gt: float | None = None, ge: float | None = None, le: float | None = None):
    """An argparse ``type`` parsing ``kind`` and checking ``gt < value``, ``ge <= value``, ``value <= le``."""
    rule = name  # e.g. "0 < top_p <= 1", "temperature > 0", "n >= 1"
    if gt is not None:
        rule = f"{gt:g} < {rule}" if le is not None else f"{rule} > {gt:g}"
    if ge is not None:
        rule = f"{ge:g} <= {rule}" if le is not None else f"{rule} >= {ge:g}"
    if le is not None:
        rule += f" <= {le:g}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is {'not an integer' if kind is int else 'not a number'}") from None
        if value != value or (gt is not None and not value > gt) or (ge is not None and not value >= ge) \
                or (le is not None and not value <= le):
            raise argparse.ArgumentTypeError(f"{text}: expected {rule}")
        return value
    return parse


def check_model_kind(model_dir: Path, kind: str, what: str) -> None:
    """``ValueError`` when ``model_dir``'s ``config.json`` is not ``kind`` (``"reward_model"`` or ``"causal_lm"``).

    Read before any weights load: a causal LM scored as a reward model fails later with a shape
    mismatch, and a sequence classifier loaded as a causal LM samples noise from new random weights.
    A config without ``architectures`` is let through (the loader decides).
    """
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    archs = list(getattr(config, "architectures", None) or [])
    said = f"its config.json says {', '.join(archs)}"
    if kind == "reward_model":
        if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
            raise ValueError(f"{what} is not a reward model: {said} (a causal LM or another head); a reward model is "
                             "a sequence classifier with one output: pass models/reward_model or "
                             "registry:reward-model@champion")
        if archs and config.num_labels != 1:
            raise ValueError(f"{what} is not a reward model: a sequence classifier with {config.num_labels} labels; "
                             "a reward model has one output (num_labels=1)")
    elif kind == "causal_lm":
        if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
            raise ValueError(f"{what} is not a causal language model: {said} (e.g. the reward model); generate "
                             "samples from a policy or base model: models/policy, models/base or "
                             "registry:policy@champion")
    else:
        raise ValueError(f"check_model_kind: unknown kind {kind!r}")


def cmd_score(args: argparse.Namespace) -> int:
    """Score texts with the reward model, or report its accuracy on a rank-list file."""
    from rlhf.reward.model import load_reward_model
    from rlhf_cli.models import resolve_model_dir

    if not args.texts and not args.file:
        print("error: score: give TEXT arguments or --file RANKLISTS", file=sys.stderr)
        return 2
    if args.baseline and not args.file:
        print("error: score: --baseline needs --file RANKLISTS (the baseline ranks lists; it has no reward scale)",
              file=sys.stderr)
        return 2
    model_dir, what = resolve_model_dir("reward-model", args.model)
    check_model_kind(model_dir, "reward_model", f"--model {args.model}" if args.model else what)
    scorer = load_reward_model(model_dir)
    console = Console()
    console.print(f"reward model: {what}")
    if args.texts:
        raw = scorer.score_texts(args.texts).tolist()
        normed = scorer.normalize(scorer.score_texts(args.texts)).tolist() if scorer.stats else [None] * len(raw)
        table = Table("text", "reward", "normalised")
        for text, r, n in zip(args.texts, raw, normed):
            table.add_row(text, f"{r:.4f}", "-" if n is None else f"{n:.3f}")
        console.print(table)
    if args.file:
        from rlhf.data.ranklist import read_published_tsv, read_ranklists
        from rlhf.reward.evaluate import evaluate_reward_model

        path = Path(args.file)
        published = args.format == "published_tsv" or (args.format == "auto" and path.suffix in (".tsv", ".txt"))
        lists = read_published_tsv(path) if published else read_ranklists(path)
        rows = [("reward model", evaluate_reward_model(scorer, lists, include_texts=False)["metrics"])]
        if args.baseline:
            rows.append(baseline_row(lists))
        table = Table("model", "lists", "pairs", "pairwise accuracy", "exact-order accuracy", "Kendall tau-b",
                      title=str(path), title_justify="left")
        table.columns[0].no_wrap = True
        for name, m in rows:
            table.add_row(name, str(m["n_lists"]), str(m["n_pairs"]), f"{m['pairwise_accuracy']:.4f}",
                          f"{m['exact_order_accuracy']:.4f}", f"{m['kendall_tau_b']:.4f}")
        console.print(table)
    return 0


def baseline_row(lists) -> tuple[str, dict]:
    """``(label, figures)`` of the linear baseline fit on this project's ``data/prepared`` train split."""
    from rlhf.reward.baseline import fit_baseline
    from rlhf.reward.evaluate import evaluate_text_scorer
    from rlhf_ops.environment import find_project_root

    prepared = find_project_root() / "data" / "prepared"
    linear = fit_baseline(prepared)  # FileNotFoundError names what is missing and how to make it
    return f"baseline: {linear.kind}", evaluate_text_scorer(linear, lists)


def cmd_generate(args: argparse.Namespace) -> int:
    """Sample completions from the champion policy (or ``--model``)."""
    from transformers import AutoModelForCausalLM

    from rlhf.sampling import sample_completions
    from rlhf.tokenizer import load_tokenizer
    from rlhf_cli.models import resolve_model_dir

    model_dir, what = resolve_model_dir("policy", args.model)
    check_model_kind(model_dir, "causal_lm", f"--model {args.model}" if args.model else what)
    tok = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    outs = sample_completions(model, tok, args.prompt, n=args.n, max_new_tokens=args.max_new_tokens, seed=args.seed,
                              temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    console = Console()
    console.print(f"policy: {what}; seed {args.seed}, {args.max_new_tokens} new tokens, temperature "
                  f"{args.temperature}, top_k {args.top_k}, top_p {args.top_p}")
    for prompt, completions in zip(args.prompt, outs):
        for c in completions:
            console.print(f"{prompt}[bold]{c}[/bold]", markup=True, highlight=False)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("score", help="score texts with the reward model, or its accuracy on a rank-list file",
                       description="Print each TEXT's reward from the champion reward model (or --model), or with "
                                   "--file the accuracy on a rank-list JSONL / published TSV file.")
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.add_argument("--file", help="rank lists: JSONL (DESIGN.md §4) or the published tab-separated format")
    p.add_argument("--format", choices=("auto", "ranklists", "published_tsv"), default="auto",
                   help="format of --file (auto: .tsv/.txt = published_tsv, else JSONL)")
    p.add_argument("--model", help="a reward-model directory or registry:reward-model@ALIAS (default: champion)")
    p.add_argument("--baseline", action="store_true",
                   help="with --file: also rank the lists with the linear baseline (TF-IDF character n-grams, "
                        "fit on the project's data/prepared train split), as evaluate_reward_model does")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("generate", help="sample completions from the policy",
                       description="Sample completions from the champion policy (or --model) for each --prompt.")
    p.add_argument("--prompt", action="append", required=True, help="a prompt (repeatable), e.g. 这部电影很")
    p.add_argument("-n", type=bounded(int, "n", ge=1), default=5, help="samples per prompt (default 5)")
    p.add_argument("--max-new-tokens", type=bounded(int, "max_new_tokens", ge=1), default=16,
                   help="tokens sampled after the prompt (default 16)")
    p.add_argument("--temperature", type=bounded(float, "temperature", gt=0), default=1.0,
                   help="sampling temperature, > 0 (default 1.0)")
    p.add_argument("--top-k", type=bounded(int, "top_k", ge=0), default=0, help="top-k filter, 0 = off (default 0)")
    p.add_argument("--top-p", type=bounded(float, "top_p", gt=0, le=1), default=1.0,
                   help="nucleus filter, 0 < top_p <= 1, 1 = off (default 1.0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="a policy directory, `base`'s models/base, or registry:policy@ALIAS "
                                   "(default: champion)")
    p.set_defaults(func=cmd_generate)
