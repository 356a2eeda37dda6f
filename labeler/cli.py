"""``rlhf label`` (start the labelling app) and ``rlhf labels export|import|stats``.

:func:`add_commands` adds both to the ``rlhf`` console script's argparse sub-parsers; each
command is ``args.func(args) -> int`` (the exit status). Default paths are in the project
(the nearest directory holding ``dvc.yaml``); paths given on the command line are taken as typed
(relative to the current directory).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlhf_ops.environment import find_project_root

DEFAULT_DB = Path("data") / "labels.db"
DEFAULT_PROMPTS = Path("data") / "prepared" / "prompts.jsonl"
DEFAULT_PORT = 8765
MAX_K = 9  # the keyboard ranks with the digits 1..9


def _db_path(args: argparse.Namespace) -> Path:
    return Path(args.db) if args.db else find_project_root() / DEFAULT_DB


def _positive(kind, low, high=None):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{text}: expected {bound}")
        return value
    return parse


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``label`` and ``labels`` (``export``, ``import``, ``stats``) to ``subparsers``."""
    db_help = f"labels database (default: <project>/{DEFAULT_DB})"

    p = subparsers.add_parser(
        "label", help="start the labelling web app (rank K sampled candidates per prompt)",
        description="Serve the labelling app: annotators rank K candidates sampled from a model for a prompt "
                    "(best first, ties allowed). Labels go to a SQLite database; `rlhf labels export` writes them "
                    "to data/labels/ for the prepare stage.")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes the app, "
                        "which has no authentication, to the network)")
    p.add_argument("--allowed-host", action="append", metavar="NAME", default=[],
                   help="a host name or IP address clients use in the URL (repeatable). The app answers only "
                        "requests for localhost, 127.0.0.1, ::1 and --host (so other web pages cannot reach it by "
                        "DNS rebinding); with --host 0.0.0.0 name every host clients will type")
    p.add_argument("--port", type=_positive(int, 1, 65535), default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--db", help=db_help)
    p.add_argument("--model", default="auto",
                   help="what samples the candidates: 'auto' (registry policy@champion, else models/policy, else "
                        "models/base), 'base', 'policy', 'registry:NAME@ALIAS' or 'registry:NAME@VERSION' "
                        "(e.g. registry:policy@champion), or a save_pretrained directory")
    p.add_argument("--k", type=_positive(int, 2, MAX_K), default=4, help=f"candidates per prompt, 2..{MAX_K} (default 4)")
    p.add_argument("--temperature", type=_positive(float, 1e-6), default=1.0, help="sampling temperature (default 1.0)")
    p.add_argument("--top-k", type=_positive(int, 0), default=0, help="top-k filter, 0 = off (default 0)")
    p.add_argument("--top-p", type=_positive(float, 1e-6, 1.0), default=1.0, help="nucleus filter, 1 = off (default 1.0)")
    p.add_argument("--max-new-tokens", type=_positive(int, 1), default=16,
                   help="tokens sampled after the prompt (default 16, as the ppo stage)")
    p.add_argument("--prompts", help=f"prompt pool JSONL (default: <project>/{DEFAULT_PROMPTS})")
    p.add_argument("--prompt-split", choices=("train", "test", "all"), default="train",
                   help="which prompts of the pool to serve (default train: test prompts stay unseen)")
    p.add_argument("--max-prompt-chars", type=_positive(int, 1), default=200,
                   help="longest prompt an annotator may type (default 200)")
    p.add_argument("--overlap", type=_positive(float, 0.0, 1.0), default=0.0,
                   help="share of pool tasks that repeat candidates another annotator ranked, for agreement "
                        "(default 0)")
    p.set_defaults(func=cmd_label)

    labels = subparsers.add_parser("labels", help="export, import and count the human labels",
                                   description="Manage the labelling app's database.")
    actions = labels.add_subparsers(dest="labels_command", metavar="ACTION", required=True)

    e = actions.add_parser("export", help="write accepted labels as rank-list JSONL for the prepare stage",
                           description="Write every accepted label as a rank list (source 'human') to "
                                       "data/labels/human.jsonl (atomic replace, deterministic order).")
    e.add_argument("--db", help=db_help)
    e.add_argument("--out", help="output file (default: <project>/data/labels/human.jsonl)")
    e.set_defaults(func=cmd_export)

    from labeler.export import IMPORT_FORMATS

    i = actions.add_parser("import", help="add rank lists from a JSONL or published TSV file",
                           description="Import rank lists (canonical JSONL, or the published format: one list a "
                                       "line, texts tab separated, best first). Bad lines are skipped and counted "
                                       "by reason; importing a file twice adds nothing.")
    i.add_argument("file", help="file to import")
    i.add_argument("--db", help=db_help)
    i.add_argument("--format", choices=IMPORT_FORMATS, default="auto", help="file format (default: auto)")
    i.add_argument("--max-chars", type=_positive(int, 1), default=4096, help="longest text accepted (default 4096)")
    i.set_defaults(func=cmd_import)

    s = actions.add_parser("stats", help="labels per annotator, today's progress, agreement, rejections")
    s.add_argument("--db", help=db_help)
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_stats)


ALL_INTERFACES = ("0.0.0.0", "::", "")


def allowed_hosts(args: argparse.Namespace) -> list[str]:
    """The ``Host`` names the app answers: localhost names, ``--host`` (unless all interfaces), ``--allowed-host``."""
    from labeler.app import LOCAL_HOSTS, host_patterns

    names = [*LOCAL_HOSTS, *([] if args.host in ALL_INTERFACES else [args.host]), *args.allowed_host]
    return list(host_patterns(names))


def cmd_label(args: argparse.Namespace) -> int:
    """Start the app with uvicorn; returns when the server stops."""
    import uvicorn

    from labeler.app import LabelerConfig, create_app

    if args.host in ALL_INTERFACES and not args.allowed_host:
        print(f"error: --host {args.host or '(all)'} listens on every interface: name the host names or addresses "
              "clients will open (e.g. --allowed-host labels.lan --allowed-host 192.168.1.5); the app answers only "
              "requests for the names it is given (no authentication: this keeps other web pages out)",
              file=sys.stderr)
        return 2
    try:
        hosts = allowed_hosts(args)
    except ValueError as e:
        print(f"error: --allowed-host: {e}", file=sys.stderr)
        return 2

    from labeler.generation import ModelGenerator, SamplingParams
    from labeler.prompts import load_prompt_pool
    from labeler.store import LabelStore

    root = find_project_root()
    generator = ModelGenerator(args.model, root)
    try:
        resolved = generator.resolve()
    except (FileNotFoundError, ValueError) as e:  # no such model, or a malformed registry: spec
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        prompts, where = load_prompt_pool(Path(args.prompts) if args.prompts else root / DEFAULT_PROMPTS,
                                          args.prompt_split)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    store = LabelStore(_db_path(args))
    sampling = SamplingParams(k=args.k, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                              max_new_tokens=args.max_new_tokens)
    config = LabelerConfig(sampling=sampling, max_prompt_chars=args.max_prompt_chars, overlap=args.overlap,
                           model_name=resolved.name, model_version=resolved.version, model_spec=args.model,
                           allowed_hosts=tuple(hosts))
    app = create_app(store, generator, prompts, config)
    print(f"labels: {store.path}\nmodel: {resolved.name} @ {resolved.version} ({resolved.directory}; loaded on first "
          f"use)\nprompts: {where}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach this port can label (no authentication)",
              file=sys.stderr)
    if "*" in hosts:
        print("warning: --allowed-host '*': any Host header is answered; a web page can reach the app through DNS "
              "rebinding", file=sys.stderr)
    shown = args.host
    if shown in ALL_INTERFACES:
        shown = next((h for h in args.allowed_host if "*" not in h), "127.0.0.1")
    print(f"open http://{f'[{shown}]' if ':' in shown else shown}:{args.port}/  (answers Host: "
          f"{', '.join(h for h in hosts if not h.startswith('['))})")
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from labeler.export import DEFAULT_EXPORT, export_labels

    out = Path(args.out) if args.out else find_project_root() / DEFAULT_EXPORT
    result = export_labels(_db_path(args), out)
    if result.path is None:
        note = f"; removed the stale {out}" if result.removed_stale else ""
        print(f"no accepted labels in {_db_path(args)}: nothing written{note}")
    else:
        print(f"wrote {result.count} rank lists to {result.path} (the prepare stage adds them to train on the next run)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from rlhf.data.errors import DataError

    from labeler.export import import_labels

    try:
        result = import_labels(_db_path(args), args.file, fmt=args.format, max_chars=args.max_chars)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rejected = ", ".join(f"{reason} {n}" for reason, n in result.rejected.items())
    print(f"{result.path} ({result.format}): read {result.read}, imported {result.imported}, "
          f"rejected {result.rejected_total}" + (f" ({rejected})" if rejected else ""))
    return 0


def stats(db: Path) -> dict:
    """Everything ``labels stats`` prints: counts, labels per annotator, today's progress, agreement."""
    from dataclasses import asdict

    from labeler.agreement import compare_labels, summarize
    from labeler.app import start_of_today
    from labeler.store import LabelStore

    store = LabelStore(db)
    accepted = store.labels("accepted")
    per_annotator: dict[str, int] = {}
    for label in accepted:
        key = label.annotator or "(none)"
        per_annotator[key] = per_annotator.get(key, 0) + 1
    return {"db": str(store.path), **store.counts(), "labels_per_annotator": dict(sorted(per_annotator.items())),
            "today": store.progress(start_of_today()),
            "agreement": [asdict(row) for row in summarize(compare_labels(accepted))]}


def cmd_stats(args: argparse.Namespace) -> int:
    data = stats(_db_path(args))
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    print(f"{data['db']}: {data['labels']['accepted']} accepted labels ({data['accepted_by_origin']['app']} from the "
          f"app, {data['accepted_by_origin']['import']} imported), {data['labels']['undone']} undone, "
          f"{data['tasks']['skipped']} skipped, {data['tasks']['open']} open tasks")
    for who, n in data["labels_per_annotator"].items():
        today = data["today"].get(who, {}).get("labels", 0)
        print(f"  {who:<24} {n:>6} labels   {today:>4} today")
    for row in data["agreement"]:
        tau = "n/a" if row["mean_tau_b"] is None else f"{row['mean_tau_b']:.3f}"
        print(f"  agreement {row['annotator_a']} / {row['annotator_b']}: {row['agreement']:.3f} over {row['pairs']} "
              f"candidate pairs in {row['comparisons']} label pairs, mean tau-b {tau}")
    if data["rejected"]:
        print("  rejected: " + ", ".join(f"{reason} {n}" for reason, n in data["rejected"].items()))
    return 0
