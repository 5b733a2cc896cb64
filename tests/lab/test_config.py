"""Run specs, their hashes, activation parsing and study configuration."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from actlab.lab.config import (
    RUN_PROTOCOL,
    ActivationChoice,
    ConfigError,
    RunSpec,
    StudyConfig,
    load_config_file,
    parse_activation,
    parse_activation_list,
    parse_model,
    parse_option,
)


def spec(**kw) -> RunSpec:
    base = dict(
        task="digits", model="mlp", activation=ActivationChoice("relu"), seed=0, epochs=2, batch_size=32, lr=1e-3
    )
    return RunSpec(**{**base, **kw})


def test_hash_is_sha256_of_the_documented_canonical_json():
    s = spec(model_options={"hidden": 8}, activation=ActivationChoice("srs", {"beta": 3.0, "alpha": 5.0}))
    canonical = (
        '{"activation":{"kwargs":{"alpha":5.0,"beta":3.0},"name":"srs"},"batch_size":32,"device":"cpu",'
        '"epochs":2,"grad_clip":null,"limit":null,"lr":0.001,"model":"mlp","model_options":{"hidden":8},'
        f'"optimizer":"adam","protocol":{RUN_PROTOCOL},"seed":0,"task":"digits","weight_decay":0.0}}'
    )
    assert s.config_hash() == hashlib.sha256(canonical.encode()).hexdigest()


def test_hash_ignores_where_and_how_fast_but_not_what():
    base = spec()
    assert spec(data_dir="/elsewhere", threads=7).config_hash() == base.config_hash()
    assert spec(lr=1).config_hash() == spec(lr=1.0).config_hash()
    changed = dict(
        task="iris",
        model="cnn",
        activation=ActivationChoice("gelu"),
        seed=1,
        epochs=3,
        batch_size=16,
        lr=0.01,
        weight_decay=0.1,
        optimizer="sgd",
        grad_clip=1.0,
        limit=100,
        model_options={"hidden": 4},
        device="cuda",
    )
    hashes = {spec(**{k: v}).config_hash() for k, v in changed.items()}
    assert len(hashes) == len(changed) and base.config_hash() not in hashes


def test_group_key_ignores_activation_and_seed_only():
    assert spec(seed=3, activation=ActivationChoice("srs")).group_key() == spec().group_key()
    assert spec(epochs=5).group_key() != spec().group_key()


def test_spec_round_trips_through_a_dict():
    s = spec(activation=ActivationChoice("srs", {"alpha": 5.0}), model_options={"channels": [8, 16]}, limit=10)
    assert RunSpec.from_dict(s.to_dict()) == s


def test_activation_parsing():
    assert parse_activation("relu") == ActivationChoice("relu", {})
    assert parse_activation(" SRS ( beta = 3 , alpha=5 ) ").label == "srs(alpha=5,beta=3)"
    assert parse_activation("soft-root-sign").name == "srs"  # alias and separators resolve
    assert [c.label for c in parse_activation_list("relu, srs(alpha=5,beta=3),pau(degrees=[5, 4])")] == [
        "relu",
        "srs(alpha=5,beta=3)",
        "pau(degrees=[5, 4])",
    ]
    for bad, message in [
        ("nosuch", "unknown activation"),
        ("srs(5)", "by keyword"),
        ("srs(alpha=x)", "must be a literal"),
        ("srs(alpha=5", "closing parenthesis"),
        ("srs(**k)", "not supported"),
        ("(alpha=1)", "empty activation name"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_activation(bad)
    with pytest.raises(ConfigError, match="unbalanced"):
        parse_activation_list("relu,srs(alpha=5")
    with pytest.raises(ConfigError, match="listed twice"):
        parse_activation_list("relu,srs,ReLU")


def test_options_are_literals_or_strings():
    assert parse_option("hidden=128") == ("hidden", 128)
    assert parse_option("channels=[16, 32]") == ("channels", [16, 32])
    assert parse_option("norm=batch") == ("norm", "batch")
    assert parse_option("batch_norm=True") == ("batch_norm", True)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_option("=3")
    with pytest.raises(ConfigError, match="finite"):
        parse_option("x=1e999")


def test_grid_order_count_and_the_baseline_is_added():
    c = StudyConfig(tasks=["digits"], models=["mlp", "cnn"], activations=["srs", "gelu"], seeds=[0, 1], epochs=1)
    specs = c.run_specs()
    assert len(specs) == 2 * 2 * 3
    assert [(s.model, s.seed, s.activation.label) for s in specs[:6]] == [
        ("mlp", 0, "srs"), ("mlp", 0, "gelu"), ("mlp", 0, "relu"),
        ("mlp", 1, "srs"), ("mlp", 1, "gelu"), ("mlp", 1, "relu"),
    ]  # fmt: skip


def test_precedence_flag_then_task_settings_then_study_then_default():
    c = StudyConfig(epochs=10, lr=0.01, task_settings={"digits": {"epochs": 5, "limit": 50}})
    assert c.training_for("digits") == dict(
        epochs=5, batch_size=64, lr=0.01, weight_decay=0.0, optimizer="adam", grad_clip=None, limit=50
    )
    assert c.training_for("iris")["epochs"] == 10
    assert StudyConfig().training_for("digits")["epochs"] == 30  # built-in per-task default
    assert StudyConfig().training_for("sines2d")["epochs"] == 20  # generic default
    flagged = c.merged({"epochs": 2, "batch_size": None})
    assert flagged.training_for("digits")["epochs"] == 2 and flagged.training_for("digits")["limit"] == 50


def test_model_options_merge_per_model():
    c = StudyConfig(model_options={"mlp": {"hidden": 8, "depth": 1}})
    merged = c.merged({"model_options": {"mlp": {"hidden": 16}, "cnn": {"channels": [4]}}})
    assert merged.model_options == {"mlp": {"hidden": 16, "depth": 1}, "cnn": {"channels": [4]}}
    assert c.model_options == {"mlp": {"hidden": 8, "depth": 1}}  # the original is untouched


def test_model_arms_carry_their_own_options_over_the_shared_ones():
    c = StudyConfig(
        models=["mlp(depth=2)", "mlp(depth=8, hidden=32)", "cnn"],
        activations=["relu"],
        seeds=[0],
        model_options={"mlp": {"hidden": 16, "depth": 1}, "cnn": {"channels": [4]}},
    )
    specs = c.run_specs()
    assert [(s.model, dict(s.model_options)) for s in specs] == [
        ("mlp", {"hidden": 16, "depth": 2}),
        ("mlp", {"hidden": 32, "depth": 8}),
        ("cnn", {"channels": [4]}),
    ]
    # Each arm is its own comparison; an arm spelled like the shared options is the same runs.
    assert len({s.group_key() for s in specs}) == 3
    same = StudyConfig(
        models=["mlp"], activations=["relu"], seeds=[0], model_options={"mlp": {"hidden": 16, "depth": 2}}
    )
    assert same.run_specs()[0].config_hash() == specs[0].config_hash()


def test_model_choice_parsing():
    m = parse_model(" cnn(init='normal', batch_norm=False) ")
    assert (m.name, dict(m.kwargs), m.label) == (
        "cnn",
        {"init": "normal", "batch_norm": False},
        "cnn(batch_norm=False,init='normal')",
    )
    assert parse_model("mlp").label == "mlp"
    for bad, message in [("mlp(8)", "by keyword"), ("mlp(depth=x)", "must be a literal"), ("mlp(depth=2", "closing")]:
        with pytest.raises(ConfigError, match=message):
            parse_model(bad)
    with pytest.raises(ConfigError, match="models lists a model twice"):
        StudyConfig(models=["mlp(depth=2,hidden=8)", "mlp(hidden=8, depth=2)"]).validate()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(seeds=[]), "no seed"),
        (dict(seeds=[0, 0]), "listed twice"),
        (dict(seeds=[-1]), "non-negative"),
        (dict(epochs=0), "epochs must be a positive integer"),
        (dict(lr=0.0), "lr must be > 0"),
        (dict(weight_decay=-1.0), "weight_decay must be >= 0"),
        (dict(optimizer="lbfgs"), "optimizer must be one of"),
        (dict(test="anova"), "test must be one of"),
        (dict(device="tpu"), "device must be one of"),
        (dict(tasks=["digits", "digits"]), "lists a name twice"),
        (dict(task_settings={"digits": {"epoch": 3}}), "unknown setting"),
        (dict(activations=["relu", "nosuch"]), "unknown activation"),
    ],
)
def test_validation_names_the_problem(change, message):
    with pytest.raises(ConfigError, match=message):
        dataclasses.replace(StudyConfig(), **change).validate()


def test_json_config_file_and_seed_count(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"tasks": "digits", "activations": "relu,srs(alpha=5,beta=3)", "seeds": 4}')
    c = load_config_file(path)
    assert c.tasks == ["digits"] and c.seeds == [0, 1, 2, 3]
    assert [a.label for a in c.activation_choices()] == ["relu", "srs(alpha=5,beta=3)"]
    with pytest.raises(ConfigError, match="must end in .toml or .json"):
        load_config_file(tmp_path / "s.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "missing.toml")
