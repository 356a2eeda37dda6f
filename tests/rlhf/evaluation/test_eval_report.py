"""samples.md and the PNG plots."""
import re

from rlhf.evaluation.report import escape_cell, plot_ppo_curves, samples_markdown, write_report

PNG = b"\x89PNG\r\n\x1a\n"


def metrics(judge):
    return {"judge_score": judge, "judge_positive_rate": 0.5, "distinct_1": 0.3, "distinct_2": 0.6,
            "repetition_rate": 0.1, "mean_length": 12.0, "eos_rate": 0.2, "perplexity": 30.0}


def fake_result(rows):
    summary = {"base": metrics(0.5), "tuned": metrics(0.7), "kl": 1.5, "win_rate": 0.6}
    return {**summary, "groups": {"published": {"n_samples": len(rows), **summary}}, "rows": rows,
            "n_samples": len(rows), "n_prompts": 2, "seed": 0, "eval_key": "k"}


ROWS = [
    {"prompt": "这部电影很", "group": "published", "base": "一般|无聊", "tuned": "好看\n推荐", "base_judge": 0.4,
     "tuned_judge": 0.9, "kl": 1.0},
    {"prompt": "这部电影很", "group": "published", "base": "", "tuned": "a\\|b", "base_judge": 0.5,
     "tuned_judge": 0.6, "kl": 2.0},
    {"prompt": "说实话，真的很", "group": "published", "base": "差", "tuned": "棒", "base_judge": 0.1,
     "tuned_judge": 0.8, "kl": 1.5},
]


def split_cells(line: str) -> list[str]:
    """Cells of a markdown table row: split on pipes not escaped by an odd number of backslashes."""
    return re.split(r"(?<!\\)(?:\\\\)*\|", line.strip())[1:-1]


def test_escape_cell():
    assert escape_cell("a|b\nc\r\nd\\") == "a\\|b<br>c<br>d\\\\"
    assert escape_cell("好") == "好"


def test_samples_markdown_has_one_row_per_pair():
    md = samples_markdown(fake_result(ROWS))
    table = md.split("## Samples")[1].strip().splitlines()
    assert len(table) == 2 + len(ROWS)  # header, separator, one row per sample pair
    for line in table:
        assert len(split_cells(line)) == 7
    assert "一般\\|无聊" in table[2] and "好看<br>推荐" in table[2] and "*(empty)*" in table[3]
    assert split_cells(table[3])[5].strip() == "a\\\\\\|b"  # backslash then pipe, both escaped
    assert "| judge score (mean) | 0.500 | 0.700 |" in md and "## Group `published` (3 pairs)" in md


def test_frequent_bigrams_section_shows_a_collapsed_policy():
    bases = ["一般", "好看", "差劲", "还行"]
    rows = [dict(ROWS[0], base=base, tuned="很漂亮" if i < 3 else "不错") for i, base in enumerate(bases)]
    md = samples_markdown(fake_result(rows))
    section = md.split("## Most frequent bigrams")[1].split("## Samples")[0]
    table = [line for line in section.splitlines() if line.startswith("|")][2:]  # rows after header and separator
    assert [c.strip() for c in split_cells(table[0])] == ["1", "一般", "0.250", "很漂", "0.750"]
    assert [c.strip() for c in split_cells(table[1])][3:] == ["漂亮", "0.750"]


def test_rm_columns_appear_when_scored():
    rows = [dict(r, base_rm=0.1, tuned_rm=0.2) for r in ROWS]
    line = samples_markdown(fake_result(rows)).split("## Samples")[1].strip().splitlines()[2]
    assert len(split_cells(line)) == 9 and line.rstrip().endswith("| 0.100 | 0.200 |")


def test_write_report_produces_files(tmp_path):
    history = [{"objective/scores": 0.6 + 0.02 * i, "objective/kl": 0.1 * i} for i in range(10)]
    paths = write_report(fake_result(ROWS), tmp_path / "samples", ppo_history=history)
    assert set(paths) == {"samples_md", "judge_hist", "ppo_reward", "ppo_kl"}
    assert paths["samples_md"].read_text(encoding="utf-8").startswith("# Samples")
    for key in ("judge_hist", "ppo_reward", "ppo_kl"):
        assert paths[key].suffix == ".png" and paths[key].read_bytes()[:8] == PNG
    assert set(write_report(fake_result(ROWS), tmp_path / "no_ppo")) == {"samples_md", "judge_hist"}
    assert set(plot_ppo_curves([{"objective/kl": 0.1}], tmp_path / "kl_only")) == {"ppo_kl"}
