"""Config: the committed files, --set overrides and the schema's errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from suite.config import TrainSettings, load_config, parse_yaml
from suite.cli import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_train_yaml_holds_the_original_values_as_numbers():
    config = load_config(REPO / "config" / "train.yaml")
    assert config["model"] == "mobilenet" and config["save"] is True and config["runs"] == 15
    assert config["train_examples"] == 1000 and config["dataset_name"] == "SVHN"
    assert (config["batch_size_train"], config["batch_size_test"]) == (128, 500)
    assert config["optimizer"] == {"name": "sgd", "learning_rate": 0.1, "weight_decay": 5e-4, "momentum": 0.9,
                                   "nesterov": True, "warmup_epochs": 0, "min_lr": 0.0}
    assert isinstance(config["optimizer"]["weight_decay"], float)
    assert (config["SVHN"]["num_epochs"], config["SVHN"]["opt_milestones"]) == (40, [20, 30])
    assert (config["CIFAR10"]["num_epochs"], config["CIFAR10"]["opt_milestones"]) == (300, [150, 225])
    assert config["CINIC10"]["lr_schedule"] == "cosine" and config["SVHN"]["lr_schedule"] == "multistep"
    assert all(config[d]["mem_examples"] == 100 and config[d]["num_classes"] == 10
               for d in ("SVHN", "CIFAR10", "CINIC10"))


def test_quickstart_has_the_same_schema_and_overrides_work_on_it():
    config = load_config(REPO / "config" / "quickstart.yaml", ["DIGITS.num_epochs=3", "model=resnet18"])
    assert config["dataset_name"] == "DIGITS" and config["DIGITS"]["num_epochs"] == 3
    assert config["model"] == "resnet18" and config["download"] is False


def test_dotted_overrides_reach_nested_keys():
    config = load_config(REPO / "config" / "train.yaml",
                         ["dataset_name=CIFAR10", "CIFAR10.num_epochs=2", "optimizer.learning_rate=1e-2",
                          "CIFAR10.opt_milestones=[1]"])
    settings = TrainSettings(config, "memory")
    assert settings.num_epochs == 2 and settings.section["opt_milestones"] == [1]
    assert config["optimizer"]["learning_rate"] == 0.01
    assert settings.cell_folder == Path("models/CIFAR10/memory/mobilenet/1000")


def test_exponent_without_a_dot_is_a_float():
    assert parse_yaml("a: 1e-1\nb: 5e-4\nc: 3\nd: '1e-1'") == {"a": 0.1, "b": 5e-4, "c": 3, "d": "1e-1"}


@pytest.mark.parametrize("override, message", [
    ("runs=abc", "config key 'runs' must be an integer of at least 1, got 'abc'"),
    ("nonsense=1", "unknown config key 'nonsense'; valid keys: model,"),
    ("SVHN.epochs=3", "unknown config key 'SVHN.epochs'; valid keys under SVHN: num_classes"),
    ("optimizer.name=rmsprop", "config key 'optimizer.name' must be one of sgd, adam"),
    ("dataset_name=MNIST", "unknown dataset 'MNIST'; valid datasets: "),
    ("save=maybe", "config key 'save' must be true or false"),
    ("SVHN.opt_milestones=5", "config key 'SVHN.opt_milestones' must be a list of epochs"),
    ("train_examples", "--set takes key=value"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(REPO / "config" / "train.yaml", [override])
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_unknown_dataset_error_lists_every_registered_dataset():
    from suite.datasets import list_datasets

    with pytest.raises(ConfigError) as error:
        load_config(REPO / "config" / "train.yaml", ["dataset_name=MNIST"])
    assert sorted(str(error.value).split("valid datasets: ")[1].split(", ")) == sorted(list_datasets())


def test_a_dataset_without_a_section_gets_its_registered_defaults():
    from suite.datasets import get_spec

    settings = TrainSettings(load_config(REPO / "config" / "train.yaml", ["dataset_name=DIGITS"]), "std")
    assert "DIGITS" not in load_config(REPO / "config" / "train.yaml")  # train.yaml has no DIGITS section
    defaults = get_spec("DIGITS").default_section
    assert settings.num_epochs == defaults["num_epochs"] and settings.mem_examples == defaults["mem_examples"]
    assert settings.num_classes == 10 == len(get_spec("DIGITS").classes)


def test_num_classes_comes_from_the_dataset_and_a_contradiction_is_an_error():
    settings = TrainSettings(load_config(REPO / "config" / "train.yaml", ["SVHN.num_classes=null"]), "std")
    assert settings.num_classes == 10
    wrong = TrainSettings(load_config(REPO / "config" / "train.yaml", ["SVHN.num_classes=12"]), "std")
    with pytest.raises(ConfigError, match=r"'SVHN.num_classes' is 12, but SVHN has 10 classes"):
        wrong.num_classes


def test_unreadable_config_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "short.yaml").write_text("model: mobilenet\n")
    with pytest.raises(ConfigError, match="config key 'train_examples' is missing"):
        load_config(tmp_path / "short.yaml")


def test_devices_this_machine_lacks_are_one_line_errors(monkeypatch):
    import torch

    from suite.cli import ConfigError
    from suite.recipe import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda:0")
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match="has 2 GPU"):
        resolve_device("cuda:2")
