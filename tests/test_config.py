"""Config: the committed files, --set overrides and the schema's errors."""
from __future__ import annotations

import json
import re
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
    ("SVHN.epochs=3", "unknown config key 'SVHN.epochs'; did you mean 'SVHN.num_epochs'?"),
    ("SVHN.memory_size=3", "unknown config key 'SVHN.memory_size'; valid keys under SVHN: num_classes,"),
    ("num_epoch=3", "unknown config key 'num_epoch'; did you mean 'SVHN.num_epochs'?"),
    ("learning_rate=0.1", "unknown config key 'learning_rate'; did you mean 'optimizer.learning_rate'?"),
    ("optimizer.lr=0.1", "unknown config key 'optimizer.lr'; valid keys under optimizer: name,"),
    ("optimizer.momentun=0.5", "unknown config key 'optimizer.momentun'; did you mean 'optimizer.momentum'?"),
    ("trainexamples=3", "unknown config key 'trainexamples'; did you mean 'train_examples'?"),
    ("model=mobilnet", "unknown model 'mobilnet'; did you mean 'mobilenet'? (valid models: densenet, efficientnet,"),
    ("memory_sampling=balanced", "unknown memory_sampling 'balanced'; did you mean 'class_balanced'?"),
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
    (tmp_path / "misspelt.yaml").write_text("model: mobilenet\nnum_epoch: 3\n")
    with pytest.raises(ConfigError, match="unknown config key 'num_epoch'; did you mean 'SVHN.num_epochs'"):
        load_config(tmp_path / "misspelt.yaml")


# Every value the schema fills in for a key a config leaves out, as docs/config.md states it: the original's
# config/train.yaml where it had the key (known values, not read from the code).
DOCUMENTED_DEFAULTS = {
    "model": "mobilenet", "model_options": {}, "save": True, "train_examples": 1000, "runs": 15,
    "batch_size_train": 128, "batch_size_test": 500, "dataset_dir": "datasets", "dataset_name": "SVHN",
    "models_dir": "models", "download": True, "device": "auto", "amp": True, "eval_passes": 5,
    "memory_sampling": "uniform", "label_smoothing": 0.0, "autoaugment": False, "normalization": "paper",
    "compile": False, "compile_mode": "default", "channels_last": False, "eval_every": 0, "tensorboard": False,
    "cell_tag": "",
    "optimizer.name": "sgd", "optimizer.learning_rate": 0.1, "optimizer.weight_decay": 5e-4,
    "optimizer.momentum": 0.9, "optimizer.nesterov": True, "optimizer.warmup_epochs": 0, "optimizer.min_lr": 0.0,
}
# The datasets' own sections (the original's per-dataset values; DIGITS: the quick start's recipe).
DATASET_DEFAULTS = {
    "SVHN": {"num_epochs": 40, "opt_milestones": [20, 30], "mem_examples": 100, "lr_schedule": "multistep",
             "validation_size": 6000, "drop_last": True},
    "CIFAR10": {"num_epochs": 300, "opt_milestones": [150, 225], "mem_examples": 100, "lr_schedule": "multistep",
                "validation_size": 6000, "drop_last": True},
    "CINIC10": {"num_epochs": 300, "opt_milestones": [150, 225], "mem_examples": 100, "lr_schedule": "cosine",
                "validation_size": 10, "drop_last": False},
    "DIGITS": {"num_epochs": 20, "opt_milestones": [12, 16], "mem_examples": 100, "lr_schedule": "multistep",
               "validation_size": 100, "drop_last": True},
}


def _value(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def test_every_key_left_out_gets_its_documented_default(tmp_path):
    """An empty config file is the original recipe: each key the schema fills in has its known value, and
    every key of the schema is in the table (a new key needs a documented default)."""
    from suite.config import OPTIMIZER, TOP_LEVEL

    (tmp_path / "empty.yaml").write_text("")
    config = load_config(tmp_path / "empty.yaml")
    assert set(DOCUMENTED_DEFAULTS) == set(TOP_LEVEL) | {f"optimizer.{key}" for key in OPTIMIZER}
    for key, expected in DOCUMENTED_DEFAULTS.items():
        value = _value(config, key)
        assert value == expected and type(value) is type(expected), (key, value, expected)


def test_docs_state_every_default_the_schema_fills_in():
    """docs/config.md's table of keys gives the same defaults, so what a user reads is what a run gets."""
    from suite.config import parse_yaml

    rows = {}
    for line in (REPO / "docs" / "config.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[0].endswith("`"):
            rows.setdefault(cells[0].strip("`"), cells[1])
    for key, expected in DOCUMENTED_DEFAULTS.items():
        assert key in rows, f"docs/config.md has no row for {key}"
        stated = parse_yaml(rows[key]) if rows[key] != '""' else ""
        assert stated == expected, (key, rows[key], expected)
    table = (REPO / "docs" / "config.md").read_text().split("| dataset | `num_epochs`")[1].split("\n\n")[0]
    for line in table.splitlines()[2:]:
        name, *values = [cell.strip() for cell in line.strip().strip("|").split("|")]
        documented = dict(zip(("num_epochs", "opt_milestones", "mem_examples", "lr_schedule", "validation_size",
                               "drop_last"), map(parse_yaml, values)))
        assert documented == DATASET_DEFAULTS[name], name


@pytest.mark.parametrize("dataset", sorted(DATASET_DEFAULTS))
def test_a_dataset_section_left_out_or_given_in_part_keeps_the_datasets_values(tmp_path, dataset):
    """For every dataset and every key of its section: given alone (in the file or by --set), the others
    keep the dataset's own values, and the run reads those (epochs, memory size, hold-out, batches)."""
    from suite.data import drop_last, validation_size

    expected = DATASET_DEFAULTS[dataset]
    given = {"num_epochs": 2, "opt_milestones": [1], "mem_examples": 7, "lr_schedule": "cosine",
             "validation_size": 3, "drop_last": not expected["drop_last"]}
    (tmp_path / "bare.yaml").write_text(f"dataset_name: {dataset}\n")
    for key, value in [(None, None)] + list(given.items()):
        text = json.dumps(value)  # JSON is YAML
        ways = [load_config(tmp_path / "bare.yaml", [f"{dataset}.{key}={text}"] if key else []),
                load_config(tmp_path / "bare.yaml", [f"{dataset}={{{key}: {text}}}"] if key else [])]
        if key:
            (tmp_path / "part.yaml").write_text(f"dataset_name: {dataset}\n{dataset}:\n  {key}: {text}\n")
            ways.append(load_config(tmp_path / "part.yaml"))
        for config in ways:
            section = config[dataset]
            read = {"num_epochs": section["num_epochs"], "opt_milestones": section["opt_milestones"],
                    "mem_examples": TrainSettings(config, "memory").mem_examples, "lr_schedule": section["lr_schedule"],
                    "validation_size": validation_size(config), "drop_last": drop_last(config)}
            assert read == expected | ({key: value} if key else {}), (dataset, key, read)


def test_optimizer_and_model_options_given_in_part_keep_the_others(tmp_path):
    """The recipe and the encoder options merge too: a partial optimizer keeps SGD's momentum, Nesterov and
    weight decay (a config file or a --set mapping), and a model_options mapping keeps the file's others."""
    import yaml

    (tmp_path / "partial.yaml").write_text("optimizer:\n  learning_rate: 0.05\n")
    expected = {"name": "sgd", "learning_rate": 0.05, "weight_decay": 5e-4, "momentum": 0.9, "nesterov": True,
                "warmup_epochs": 0, "min_lr": 0.0}
    assert load_config(tmp_path / "partial.yaml")["optimizer"] == expected
    for override in ("optimizer={learning_rate: 0.05}", "optimizer.learning_rate=0.05"):
        assert load_config(REPO / "config" / "train.yaml", [override])["optimizer"] == expected
    vit = yaml.safe_load((REPO / "config" / "vit.yaml").read_text())["model_options"]
    for override in ("model_options={depth: 2}", "model_options.depth=2"):
        assert load_config(REPO / "config" / "vit.yaml", [override])["model_options"] == vit | {"depth": 2}
    config = load_config(REPO / "config" / "quickstart.yaml", ["DIGITS={num_epochs: 1}", "DIGITS.mem_examples=5"])
    assert (config["DIGITS"]["num_epochs"], config["DIGITS"]["mem_examples"], config["DIGITS"]["opt_milestones"]) == (
        1, 5, [12, 16])


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


# ---- every script's flag defaults, as the docs state them ----------------------------------------------
SCRIPTS = ("train.py", "eval.py", "eval_dir.py", "explanation_accuracy.py", "generate_memory_images.py",
           "generate_heatmaps.py", "grid.py", "explanation_quality.py", "train_autoencoders.py",
           "counterfactual_quality.py")
CHECKPOINT_SCRIPTS = SCRIPTS[1:6] + SCRIPTS[7:]
DUMP_DEFAULTS = """
import json, runpy, sys
import absl.app, absl.logging  # their own flags are theirs, not a script's
from absl import flags
defaults = {}
for script in sys.argv[1:]:
    before = set(flags.FLAGS)
    runpy.run_path(script, run_name="defaults_of_" + script)  # not __main__: defines the flags, runs nothing
    new = sorted(set(flags.FLAGS) - before)
    defaults[script] = {name: flags.FLAGS[name].default for name in new}
    for name in new:
        delattr(flags.FLAGS, name)
print(json.dumps(defaults))
"""


def _documented(text: str):
    """A documented default as a value: (required) / none -> None, YAML literals as themselves, and anything
    described rather than given (the run's, the checkpoint's, a path pattern) -> None: computed at run time."""
    text = text.strip().strip("`")
    if text in ("(required)", "required", "none", ""):
        return None
    value = parse_yaml(text)
    computed = isinstance(value, str) and (re.search(r"[ '<]|[A-Z]{2,}", value) is not None)  # a described path
    return None if computed or not isinstance(value, (bool, int, float, str)) else value


def _flag_rows(markdown: str, header: str) -> list[list[str]]:
    table = markdown.split(header, 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]  # after the rule
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table]


def _flag_name(cell: str) -> str:
    return re.match(r"`--(\w+)", cell).group(1)


def test_every_documented_flag_default_is_the_scripts():
    """docs/config.md (train.py, the common checkpoint flags, the evaluation and explanation scripts),
    docs/grid.md and docs/journal.md against the defaults each script's flags are defined with."""
    import json
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", DUMP_DEFAULTS, *SCRIPTS], cwd=REPO, capture_output=True, text=True,
                            env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    defaults = json.loads(result.stdout.strip().splitlines()[-1])
    config_md, grid_md, journal_md = ((REPO / "docs" / name).read_text() for name in ("config.md", "grid.md",
                                                                                      "journal.md"))
    documented: dict[tuple[str, str], str] = {}
    for flag, default, _ in _flag_rows(config_md.split("## train.py flags")[1], "| flag | default | meaning |"):
        documented[("train.py", _flag_name(flag))] = default
    for flag, default, _ in _flag_rows(config_md.split("## Common checkpoint flags")[1], "| flag | default | meaning |"):
        for script in CHECKPOINT_SCRIPTS:
            if _flag_name(flag) != "batch_size_test":  # each script's own, below
                documented[(script, _flag_name(flag))] = default
    script = None
    for cells in _flag_rows(config_md, "| script | flag | default | meaning |"):
        script = cells[0].strip("`") or script
        for name in [_flag_name(cells[1])] + re.findall(r"\(alias `--(\w+)`\)", cells[1]):
            documented[(script, name)] = cells[2]
    for flag, default, _ in _flag_rows(grid_md, "| flag | default | meaning |"):
        documented[("grid.py", _flag_name(flag))] = default
    for script_cell, flags_cell in _flag_rows(journal_md, "| script | flags (defaults) |"):
        for flag, default in re.findall(r"`--(\w+)`(?: \(([^)]*)\))?", flags_cell):
            documented[(script_cell.strip("`"), flag)] = re.split(r"[,;:=]| = ", default)[0].strip() if default \
                else "false"
    assert documented, "no flag tables found"
    for (script, flag), text in documented.items():
        assert flag in defaults[script], (script, flag, "documented but not a flag of the script")
        given = defaults[script][flag] if defaults[script][flag] != [] else None  # repeatable flags: none given
        assert given == _documented(text), (script, flag, text, given)
    undocumented = {(s, f) for s, flags_ in defaults.items() for f in flags_} - set(documented)
    assert not undocumented, sorted(undocumented)


@pytest.mark.parametrize("config, overrides, dataset", [
    ("quickstart.yaml", [], "DIGITS"), ("train.yaml", [], "SVHN"), ("train.yaml", ["dataset_name=CIFAR10"], "CIFAR10"),
    ("vit.yaml", [], "CIFAR10")])
def test_a_mistyped_section_key_is_suggested_in_the_section_of_the_configs_dataset(config, overrides, dataset):
    """`num_epoch` means the epochs of the dataset the config trains on, whichever that is."""
    with pytest.raises(ConfigError, match=rf"unknown config key 'num_epoch'; did you mean '{dataset}.num_epochs'\?"):
        load_config(REPO / "config" / config, overrides + ["num_epoch=3"])
