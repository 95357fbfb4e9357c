"""TrainConfig: presets, validation of every field at once, YAML round trip, overrides."""

import dataclasses

import pytest

from ftstudio.core.config import PRESETS, ConfigError, TrainConfig, field_help, preset, validate


def test_defaults_and_presets_are_valid():
    assert validate(TrainConfig()) == []
    for name in PRESETS:
        assert validate(preset(name)) == [], name


def test_validate_collects_every_problem_with_its_field():
    cfg = TrainConfig(lora_rank=0, learning_rate=-1.0, method="full", max_length=8, batch_tokens=4)
    fields = {p.field for p in validate(cfg)}
    assert {"lora_rank", "learning_rate", "method", "max_length"} <= fields


def test_wrong_types_are_named():
    problems = validate(TrainConfig(epochs="two", gradient_checkpointing="yes"))
    assert {p.field for p in problems} == {"epochs", "gradient_checkpointing"}


def test_yaml_round_trip(tmp_path):
    cfg = preset("balanced", method="qlora", target_modules=["q_proj", "v_proj"])
    cfg.save(tmp_path / "config.yaml")
    assert TrainConfig.load(tmp_path / "config.yaml") == cfg


def test_unknown_keys_and_bad_yaml_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="unknown setting 'lr'"):
        TrainConfig.from_yaml("lr: 0.1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TrainConfig.from_yaml("a: [1,\n", source="run.yaml")


def test_overrides_parse_values():
    cfg = TrainConfig().with_overrides(["learning_rate=1e-3", "epochs=2", "method=qlora",
                                        "target_modules=q_proj,v_proj", "gradient_checkpointing=true"])
    assert cfg.learning_rate == 1e-3 and cfg.epochs == 2.0 and isinstance(cfg.epochs, float)
    assert cfg.method == "qlora" and cfg.target_modules == ["q_proj", "v_proj"] and cfg.gradient_checkpointing
    with pytest.raises(ConfigError, match="not key=value"):
        TrainConfig().with_overrides(["epochs"])


def test_every_field_explains_itself():
    import dataclasses

    for f in dataclasses.fields(TrainConfig):
        short, detail, advanced = field_help(f.name)
        assert short and detail and isinstance(advanced, bool)


@pytest.mark.parametrize("key, value, words", [
    ("max_steps", 100_000_000, "max_steps"),
    ("seed", 10**23, "seed"),
    ("seed", -1, "seed"),
    ("seed", 1e23, "seed"),
    ("epochs", float("nan"), "epochs"),
    ("learning_rate", float("inf"), "learning_rate"),
    ("max_length", 10**9, "max_length"),
    ("samples", 10**6, "samples"),
])
def test_out_of_range_numbers_are_problems_not_crashes(key, value, words):
    problems = validate(dataclasses.replace(TrainConfig(), **{key: value}))
    assert any(p.field == words for p in problems), problems


def test_the_command_line_refuses_huge_max_steps_at_once(project, capsys):
    from ftstudio import cli

    project.add_example([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
    assert cli.main(["train", str(project.path), "--set", "max_steps=100000000"]) == 1
    assert "max_steps" in capsys.readouterr().err
    assert project.runs() == []


def test_quick_preset_scales_epochs_to_the_data():
    from ftstudio.core.config import QUICK_MAX_SEEN, QUICK_MIN_SEEN, preset, quick_epochs

    assert quick_epochs(100) == 8.0  # capped: 800 examples seen
    assert quick_epochs(270) == pytest.approx(QUICK_MIN_SEEN / 270, abs=0.01)  # the demo: 4.44 epochs
    assert quick_epochs(1000) == 1.2
    assert quick_epochs(3000) == 1.0
    assert quick_epochs(10_000) == 0.5 and 10_000 * quick_epochs(10_000) == QUICK_MAX_SEEN
    assert quick_epochs(0) == 1.0
    # more data never means fewer examples seen, up to the ceiling
    seen = [n * quick_epochs(n) for n in range(50, 20_000, 50)]
    assert all(b >= 0.99 * a for a, b in zip(seen, seen[1:]))  # (epochs are rounded to 0.001)
    assert preset("quick", train_examples=270).epochs == quick_epochs(270)
    assert preset("quick").epochs == 1.0 and preset("balanced", train_examples=100).epochs == 2.0


def test_micro_batch_is_chosen_by_the_plan_or_holds_the_longest_example():
    cfg = TrainConfig()
    assert cfg.auto_fit and cfg.micro_batch_tokens == 0
    assert validate(TrainConfig(batch_tokens=2048, max_length=512, micro_batch_tokens=512)) == []
    problems = {p.field: p.message for p in validate(TrainConfig(batch_tokens=2048, max_length=512,
                                                                 micro_batch_tokens=256))}
    assert "at least max_length (512)" in problems["micro_batch_tokens"]
    problems = {p.field: p.message for p in validate(TrainConfig(batch_tokens=1024, max_length=512,
                                                                 micro_batch_tokens=4096))}
    assert "at most batch_tokens (1024)" in problems["micro_batch_tokens"]
    assert [p.field for p in validate(TrainConfig(micro_batch_tokens=-1))] == ["micro_batch_tokens"]
    assert [p.field for p in validate(TrainConfig(auto_fit="yes"))] == ["auto_fit"]
    cfg = TrainConfig().with_overrides(["auto_fit=false", "micro_batch_tokens=1024"])
    assert cfg.auto_fit is False and cfg.micro_batch_tokens == 1024
    # a run stored before these settings existed reads with the defaults
    old = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("auto_fit", "micro_batch_tokens")}
    assert TrainConfig.from_dict(old) == TrainConfig()
