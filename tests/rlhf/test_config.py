"""Params validation: every bad key, type or value is an error naming it."""
from __future__ import annotations

from pathlib import Path

import pytest

from rlhf.config import ConfigError, from_dict, read_yaml, render_yaml
from rlhf.params import Params, load_params

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_and_tiny_profile_load():
    params = load_params(REPO / "params.yaml")
    assert params.base.model == "bootstrap"
    tiny = load_params(REPO / "tests/smoke/params.yaml")
    assert tiny.base.n_layer == 1


def test_params_yaml_matches_the_typed_defaults():
    # params.yaml is generated from the configs; a default changed in code must be changed there too.
    assert read_yaml(REPO / "params.yaml") == read_yaml_text(render_yaml(Params())), "python -m rlhf.params > params.yaml"


def read_yaml_text(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)


@pytest.mark.parametrize("data, fragment", [
    ({"bse": {}}, "unknown key bse"),
    ({"base": {"n_layr": 2}}, "unknown key base.n_layr"),
    ({"base": {"n_layer": "four"}}, "base.n_layer: got 'four'"),
    ({"base": {"n_layer": 2.5}}, "expected int"),
    ({"base": {"n_layer": True}}, "base.n_layer"),
    ({"base": {"n_layer": 0}}, "base.n_layer: got 0; expected a number in [1"),
    ({"base": {"learning_rate": 0}}, "base.learning_rate: got 0.0; expected a number in (0"),
    ({"base": {"n_embd": 30, "n_head": 4}}, "base.n_embd: got 30; expected a multiple of base.n_head=4"),
    ({"seed": -1}, "seed: got -1"),
    ({"data": {"on_error": "ignore"}}, "data.on_error: got 'ignore'"),
    ({"data": {"split": {"train": 0.5, "dev": 0.1, "test": 0.1}}}, "expected fractions summing to 1"),
    ({"base": []}, "base: got []"),
    ({"base": {"learning_rate": "fast"}}, "base.learning_rate: got 'fast' (str); expected float"),
    ({"base": {"learning_rate": "1e"}}, "base.learning_rate: got '1e' (str)"),
    ({"base": {"learning_rate": "-1e-3"}}, "base.learning_rate: got -0.001; expected a number in (0"),
    ({"base": {"n_layer": "4e0"}}, "base.n_layer: got '4e0' (str); expected int"),
])
def test_bad_values_name_key_value_and_what_is_accepted(data, fragment):
    with pytest.raises(ConfigError) as e:
        from_dict(Params, data)
    assert fragment in str(e.value)


def test_ints_are_accepted_for_floats_and_kept_as_floats():
    params = from_dict(Params, {"base": {"learning_rate": 1}})
    assert params.base.learning_rate == 1.0 and isinstance(params.base.learning_rate, float)


def test_exponent_floats_without_a_dot_are_numbers():
    # YAML 1.1 (PyYAML) reads `5e-5` as the string '5e-5'; it is the number the user meant
    params = from_dict(Params, read_yaml_text("ppo:\n  lr: 5e-5\nbase:\n  learning_rate: 1E-3\n"))
    assert params.ppo.lr == 5e-5 and params.base.learning_rate == 1e-3


def test_yaml_errors_name_file_and_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 0\nbase:\n  n_layer: [1,\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"params.yaml:\d+: invalid YAML"):
        load_params(path)
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")


def test_tiny_profile_is_a_complete_params_file():
    # DVC tracks params by key: a profile missing a key a stage lists would fail `dvc repro`.
    from rlhf.config import flatten, to_dict

    assert set(flatten(read_yaml(REPO / "tests/smoke/params.yaml"))) == set(flatten(to_dict(Params())))


def test_tiny_profile_header_lists_exactly_where_it_differs_from_the_defaults():
    # The header is how a reader of the profile knows what a smoke run does not exercise at default values.
    from rlhf.config import flatten

    tiny_path = REPO / "tests/smoke/params.yaml"
    defaults, tiny = flatten(read_yaml(REPO / "params.yaml")), flatten(read_yaml(tiny_path))
    differ = {".".join(key.split(".")[:2]) for key, value in tiny.items() if defaults.get(key) != value}
    header = [line for line in tiny_path.read_text(encoding="utf-8").splitlines()
              if line.startswith("# Differences from the defaults:")]
    assert len(header) == 1, "tests/smoke/params.yaml: no '# Differences from the defaults:' line"
    listed = {key.strip() for key in header[0].split(":", 1)[1].split(",")}
    assert listed == differ, (f"differ but not listed: {sorted(differ - listed)}; "
                              f"listed but equal: {sorted(listed - differ)}")
