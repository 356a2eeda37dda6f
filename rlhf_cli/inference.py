"""``rlhf score`` and ``rlhf generate``: use the trained models from the terminal."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table


def cmd_score(args: argparse.Namespace) -> int:
    """Score texts with the reward model, or report its accuracy on a rank-list file."""
    from rlhf.reward.model import load_reward_model
    from rlhf_cli.models import resolve_model_dir

    if not args.texts and not args.file:
        print("error: score: give TEXT arguments or --file RANKLISTS", file=sys.stderr)
        return 2
    model_dir, what = resolve_model_dir("reward-model", args.model)
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
        from rlhf.data import read_ranklists, read_published_tsv
        from rlhf.reward.evaluate import evaluate_reward_model

        path = Path(args.file)
        published = args.format == "published_tsv" or (args.format == "auto" and path.suffix in (".tsv", ".txt"))
        lists = read_published_tsv(path) if published else read_ranklists(path)
        m = evaluate_reward_model(scorer, lists, include_texts=False)["metrics"]
        table = Table("file", "lists", "pairs", "pairwise accuracy", "exact-order accuracy", "Kendall tau-b")
        table.add_row(str(path), str(m["n_lists"]), str(m["n_pairs"]), f"{m['pairwise_accuracy']:.4f}",
                      f"{m['exact_order_accuracy']:.4f}", f"{m['kendall_tau_b']:.4f}")
        console.print(table)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Sample completions from the champion policy (or ``--model``)."""
    from transformers import AutoModelForCausalLM

    from rlhf.ppo.generate import sample_completions
    from rlhf.tokenizer import load_tokenizer
    from rlhf_cli.models import resolve_model_dir

    model_dir, what = resolve_model_dir("policy", args.model)
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
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("generate", help="sample completions from the policy",
                       description="Sample completions from the champion policy (or --model) for each --prompt.")
    p.add_argument("--prompt", action="append", required=True, help="a prompt (repeatable), e.g. 这部电影很")
    p.add_argument("-n", type=int, default=5, help="samples per prompt (default 5)")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="a policy directory, `base`'s models/base, or registry:policy@ALIAS "
                                   "(default: champion)")
    p.set_defaults(func=cmd_generate)
