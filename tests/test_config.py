import dataclasses
from pathlib import Path

import pytest
import yaml

from simclr.autoencoder_config import AutoencoderConfig
from simclr.cli import main
from simclr.config import PretrainConfig, build_config
from simclr.data.reading import DataReading
from simclr.errors import UserError
from simclr.resolve import gp_excluded_columns, resolved_lr, resolved_weight_decay
from simclr.settings import config_to_yaml, read_yaml


def test_flags_win_over_file_values() -> None:
    config = build_config({"batch_size": 64, "temperature": 0.2}, {"batch_size": 32})
    assert config.batch_size == 32 and config.temperature == 0.2


def test_dashes_and_underscores_are_the_same_key() -> None:
    assert build_config({"lr-scaling": "sqrt"}, {}).lr_scaling == "sqrt"


def test_unknown_key_is_rejected_with_the_known_keys() -> None:
    with pytest.raises(UserError, match="unknown config key 'batchsize'.*batch_size"):
        build_config({"batchsize": 64}, {})


def test_wrong_type_is_rejected() -> None:
    with pytest.raises(UserError, match="'epochs' must be int"):
        build_config({"epochs": "ten"}, {})
    with pytest.raises(UserError, match="'download' must be true or false"):
        build_config({"download": "yes"}, {})


def test_optimizer_defaults_follow_the_papers() -> None:
    lars = build_config({}, {})
    assert resolved_lr(lars) == (0.3, "linear") and resolved_weight_decay(lars) == 1e-6
    adam = build_config({"optimizer": "adam"}, {})
    assert resolved_lr(adam) == (1e-3, "none")
    explicit = build_config({"optimizer": "sgd", "lr": 0.5, "lr_scaling": "sqrt", "weight_decay": 0.0}, {})
    assert resolved_lr(explicit) == (0.5, "sqrt") and resolved_weight_decay(explicit) == 0.0


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = build_config({"dataset": "cifar10", "epochs": 7, "blur_p": 0.3}, {})
    path = tmp_path / "c.yaml"
    path.write_text(config_to_yaml(config))
    assert build_config(read_yaml(path), {}) == config


def test_corrupt_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 3\nbatch_size: [64\n")
    with pytest.raises(UserError, match="not valid YAML at line"):
        read_yaml(path)


def test_print_config_resolves_file_and_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("dataset: cifar10\nepochs: 5\n")
    assert main(["pretrain", "--config", str(recipe), "--epochs", "9", "--no-channels-last", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["dataset"] == "cifar10" and printed["epochs"] == 9 and printed["channels_last"] is False
    assert set(printed) == set(PretrainConfig.__dataclass_fields__)
    assert list(tmp_path.iterdir()) == [recipe]  # nothing written


def test_gp_exclude_names_the_dataset_view_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert gp_excluded_columns(PretrainConfig(dataset="spirograph", gp_exclude="h, bback")) == (0, 5)
    assert gp_excluded_columns(PretrainConfig(dataset="cifar10", gp_exclude="hue")) == (3,)
    with pytest.raises(UserError, match="--gp-exclude hue: not a view parameter of spirograph; use some of: h, rback"):
        PretrainConfig(dataset="spirograph", gp_exclude="hue").validate()
    with pytest.raises(UserError, match="leaves no view parameter"):
        PretrainConfig(dataset="cifar10", gp_exclude="brightness,contrast,saturation,hue").validate()
    assert main(["pretrain", "--dataset", "spirograph", "--gp-exclude", "sigma", "--print-config"]) == 2
    assert "not a view parameter of spirograph" in capsys.readouterr().err


def test_the_data_reading_group_is_defined_once_and_the_dataset_comes_first() -> None:
    """Pretraining and the autoencoder inherit the data reading settings: one type and help text each, the same
    flat keys in a saved config.yaml, which opens with the dataset."""
    group = {item.name: item for item in dataclasses.fields(DataReading)}
    assert set(group) == {"data_dir", "download", "workers", "follow_links", "limit_train_images", "resize"}
    for cls in (PretrainConfig, AutoencoderConfig):
        own = {item.name: item for item in dataclasses.fields(cls)}
        for name, item in group.items():
            assert (own[name].type, own[name].metadata["help"]) == (item.type, item.metadata["help"]), name
        assert dataclasses.fields(cls)[0].name == "dataset"
    saved = yaml.safe_load(config_to_yaml(build_config({"dataset": "cifar10", "data_dir": "s3://bucket/c10"}, {})))
    assert next(iter(saved)) == "dataset" and saved["data_dir"] == "s3://bucket/c10"


def test_the_memory_budget_is_read_once_as_bytes() -> None:
    assert PretrainConfig(memory_budget="1.5G").memory_budget_bytes() == 3 * 2**29
    assert PretrainConfig().memory_budget_bytes() is None
    with pytest.raises(UserError, match="cannot read the size '8 parsecs'"):
        build_config({"memory_budget": "8 parsecs"}, {})
