"""Training config: load the YAML file, apply `--set key=value` overrides, check every key.

The file keeps the original `config/train.yaml` layout (a section per dataset, selected by
`dataset_name`); keys the original lacked have defaults, so an original config still loads.
"""
from __future__ import annotations

import copy
import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from .cli import ConfigError

# PyYAML follows YAML 1.1, where `1e-1` (no dot) is a string; accept it as the float users mean.
_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$")


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {k: [r for r in v if r[0] != "tag:yaml.org,2002:float"]
                                   for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


# ---- schema ---------------------------------------------------------------------------------
# Each entry: (checker, default). The defaults are the original's config/train.yaml (its CNN recipe)
# where it had the key, and docs/config.md lists each one; a default of REQUIRED means the key must be
# present (a dataset section's epochs and memory size come from the dataset's registered section).
REQUIRED = object()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


def _int(min_value: int) -> Callable[[Any], str | None]:
    return lambda v: None if _is_int(v) and v >= min_value else f"an integer of at least {min_value}"


def _number(min_value: float = float("-inf")) -> Callable[[Any], str | None]:
    return lambda v: None if _is_number(v) and v >= min_value else f"a number of at least {min_value:g}"


def _between(low: float, high: float, high_included: bool = True) -> Callable[[Any], str | None]:
    """A number in [low, high] (or [low, high)): values a typo puts out of range (label_smoothing 2, momentum
    5) are refused before a run starts."""
    def check(v: Any) -> str | None:
        inside = _is_number(v) and low <= v and (v <= high if high_included else v < high)
        return None if inside else f"a number from {low:g} to {high:g}" + ("" if high_included else " (excluded)")
    return check


def _positive(v: Any) -> str | None:
    return None if _is_number(v) and v > 0 else "a number above 0"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "a non-empty string"


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) else "a string"


def _choice(*values: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in values else "one of " + ", ".join(values)


def _int_list(v: Any) -> str | None:
    return None if isinstance(v, list) and all(_is_int(x) and x >= 0 for x in v) else "a list of epochs"


def _optional(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    return lambda v: None if v is None else check(v)


def _mapping(v: Any) -> str | None:
    return None if isinstance(v, dict) else "a mapping of options"


OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("multistep", "cosine", "warmup_cosine")
NORMALIZATIONS = ("paper", "vit")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

TOP_LEVEL: dict[str, tuple[Callable[[Any], str | None], Any]] = {
    "model": (_str, "mobilenet"),
    "model_options": (_mapping, {}),
    "save": (_bool, True),
    "train_examples": (_int(1), 1000),
    "runs": (_int(1), 15),
    "batch_size_train": (_int(1), 128),
    "batch_size_test": (_int(1), 500),
    "dataset_dir": (_str, "datasets"),
    "dataset_name": (_str, "SVHN"),
    "download": (_bool, True),
    "models_dir": (_str, "models"),
    "device": (_str, "auto"),
    "amp": (_bool, True),
    "eval_passes": (_int(1), 5),
    "memory_sampling": (_str, "uniform"),  # how memories are drawn: a registered strategy (suite/sampling/)
    "label_smoothing": (_between(0.0, 1.0, high_included=False), 0.0),
    "autoaugment": (_bool, False),
    "normalization": (_choice(*NORMALIZATIONS), "paper"),
    "compile": (_bool, False),
    "compile_mode": (_choice(*COMPILE_MODES), "default"),
    "channels_last": (_bool, False),
    "eval_every": (_int(0), 0),
    "tensorboard": (_bool, False),
    "cell_tag": (_text, ""),  # a cell folder of its own: TRAIN_EXAMPLES@cell_tag (the grid's sweeps set it)
}
DEFAULT_DATASET = TOP_LEVEL["dataset_name"][1]
# Keys that change how a run executes, not its numbers (beyond float rounding): a run may resume,
# and a grid may count a finished run, under other values of these.
EXECUTION_KEYS = ("runs", "save", "models_dir", "dataset_dir", "download", "device", "compile", "compile_mode",
                  "channels_last", "eval_every", "tensorboard", "cell_tag")
# Keys that only models with a memory read (std models draw no memory and evaluate in one pass): a grid
# sweeping one of them makes no new cell for the others. A dotted key of a dataset section counts too.
MEMORY_KEYS = ("memory_sampling", "eval_passes", "mem_examples")


def reads(modality: str, key: str) -> bool:
    """Whether a model of `modality` reads config key `key` (`memory_sampling`, `DIGITS.mem_examples`...)."""
    import architectures

    return architectures.get_head_class(modality).uses_memory or key.rsplit(".", 1)[-1] not in MEMORY_KEYS


# Settings that change what a run leaves or how fast it trains, not its numbers: a finished or interrupted
# run trained with other values is used as it is, with a note saying so and what follows from it.
NON_SCIENCE_KEYS = {
    "eval_every": "their metrics hold test accuracies as those runs were asked (the curves say so)",
    "tensorboard": "their TensorBoard events exist only where those runs wrote them",
    "save": "their checkpoints <N>.pt exist only where those runs saved them",
    "compile": "compiling changes the speed, not the numbers beyond float rounding",
    "compile_mode": "compiling changes the speed, not the numbers beyond float rounding",
    "channels_last": "the memory layout changes the speed, not the numbers beyond float rounding",
}


def non_science_differences(trained: dict, current: dict) -> list[tuple[str, str, str]]:
    """(key, value trained with, value now) of the NON_SCIENCE_KEYS that differ, values as JSON."""
    return [(key, json.dumps(trained[key]), json.dumps(current[key])) for key in NON_SCIENCE_KEYS
            if key in trained and key in current and trained[key] != current[key]]


OPTIMIZER: dict[str, tuple[Callable[[Any], str | None], Any]] = {
    "name": (_choice(*OPTIMIZERS), "sgd"),
    "learning_rate": (_positive, 0.1),
    "weight_decay": (_number(0.0), 5e-4),
    "momentum": (_between(0.0, 1.0), 0.9),  # SGD only
    "nesterov": (_bool, True),  # SGD only
    "warmup_epochs": (_int(0), 0),
    "min_lr": (_number(0.0), 0.0),
}
DATASET_SECTION: dict[str, tuple[Callable[[Any], str | None], Any]] = {
    "num_classes": (_optional(_int(2)), None),  # None: the dataset's class count; if given it must agree
    "num_epochs": (_int(1), REQUIRED),
    "opt_milestones": (_int_list, []),
    "mem_examples": (_int(1), REQUIRED),
    "lr_schedule": (_choice(*LR_SCHEDULES), "multistep"),
    "validation_size": (_optional(_int(0)), None),  # None: the dataset's own (6000 for SVHN and CIFAR10)
    "drop_last": (_optional(_bool), None),  # of the training batches; None: the dataset's own (CINIC10: false)
}


def nearest(word: str, valid: list[str] | tuple[str, ...]) -> str | None:
    """The valid name closest to a mistyped one, or None when none is close."""
    close = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    if not close:  # a difference of case is a typo too
        close = [v for v in valid if v.lower() == word.lower()]
    return close[0] if close else None


def unknown_name(noun: str, word: str, valid: list[str] | tuple[str, ...], prefix: str = "",
                 plural: str | None = None) -> str:
    """`unknown <noun> '<word>'; did you mean '<nearest>'?`, or the valid names when none is close; a short
    list of valid names (up to 12) is given with the guess too."""
    guess = nearest(word, valid)
    if guess is not None:
        listed = f" (valid {plural or noun + 's'}: {', '.join(valid)})" if len(valid) <= 12 else ""
        return f"unknown {noun} '{prefix}{word}'; did you mean '{prefix}{guess}'?{listed}"
    return f"unknown {noun} '{prefix}{word}'; valid {plural or noun + 's'}: {', '.join(valid)}"


def _check_section(section: dict, schema: dict, where: str) -> dict:
    if not isinstance(section, dict):
        raise ConfigError(f"config key '{where.rstrip('.')}' must be a mapping")
    unknown = sorted(set(section) - set(schema))
    if unknown:
        raise ConfigError(unknown_name("config key", unknown[0], list(schema), where, "keys here"))
    checked = {}
    for key, (check, default) in schema.items():
        if key not in section:
            if default is REQUIRED:
                raise ConfigError(f"config key '{where}{key}' is missing")
            checked[key] = copy.deepcopy(default)
            continue
        problem = check(section[key])
        if problem:
            raise ConfigError(f"config key '{where}{key}' must be {problem}, got {section[key]!r}")
        checked[key] = section[key]
    return checked


def dataset_defaults(name: str) -> dict:
    """The section a registered dataset gives the keys its config section leaves out, its own class count,
    hold-out and drop_last included ({} for a name the registry does not know: the caller then reports
    what is missing)."""
    from .datasets import get_spec
    from .cli import UserError

    try:
        spec = get_spec(name)
    except UserError:
        return {}
    return {"num_classes": spec.num_classes, "validation_size": spec.validation_size,
            "drop_last": spec.drop_last} | copy.deepcopy(dict(spec.default_section))


def _resolved(section: dict, defaults: dict) -> dict:
    """A checked section whose optional keys left empty (null) take the dataset's own values, so that a
    config that gives them and one that leaves them out describe the same run alike."""
    return {key: defaults.get(key) if value is None and key in defaults else value for key, value in section.items()}


def validate(raw: Any, dataset_names: list[str], model_names: list[str] | None = None) -> dict:
    """Return the config with defaults filled in; raise ConfigError naming the first bad key.

    Every section merges with its defaults: a dataset section that gives some keys keeps the dataset's
    registered values of the others (`dataset_defaults`), and the optimizer section the schema's.
    `model_names` None asks the registries of models and memory samplings (which import torch).
    """
    if not isinstance(raw, dict):
        raise ConfigError("the config file must hold a mapping of keys")
    sections = {k for k in raw if k in dataset_names}
    top = {k: v for k, v in raw.items() if k not in sections and k != "optimizer"}
    unknown = sorted(set(top) - set(TOP_LEVEL))
    if unknown:
        raise ConfigError(_unknown_top_level(unknown[0], dataset_names, raw.get("dataset_name", DEFAULT_DATASET)))
    config = _check_section(top, TOP_LEVEL, "")
    config["optimizer"] = _check_section(raw.get("optimizer", {}), OPTIMIZER, "optimizer.")
    if config["dataset_name"] not in dataset_names:
        raise ConfigError(unknown_name("dataset", config["dataset_name"], dataset_names))
    for name in sorted(sections | {config["dataset_name"]}):
        given = raw.get(name, {})
        if not isinstance(given, dict):
            raise ConfigError(f"config key '{name}' must be a mapping")
        defaults = dataset_defaults(name)
        config[name] = _resolved(_check_section(defaults | given, DATASET_SECTION, f"{name}."), defaults)
    if model_names is None:
        import architectures
        from .sampling import list_samplings

        model_names = architectures.list_models()
        if config["memory_sampling"] not in list_samplings():
            raise ConfigError(unknown_name("memory_sampling", config["memory_sampling"], list_samplings(),
                                           plural="memory samplings"))
    if config["model"] not in model_names:
        raise ConfigError(unknown_name("model", config["model"], model_names))
    if not re.fullmatch(r"[A-Za-z0-9._=,+\-\[\]:\"]*", config["cell_tag"]):
        raise ConfigError(f"config key 'cell_tag' may hold letters, digits and . _ = , + - [ ] : \" only, "
                          f"got {config['cell_tag']!r}")
    return config


def apply_override(raw: dict, assignment: str, dataset_names: list[str]) -> None:
    """Apply one `dotted.key=value` (value parsed as YAML) to the raw config, in place. A mapping given
    to a section (`optimizer`, a dataset's, `model_options`) merges into it key by key."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set takes key=value, got '{assignment}'")
    parts = key.split(".")
    head = parts[0]
    if len(parts) == 1:
        if head not in TOP_LEVEL and head != "optimizer" and head not in dataset_names:
            raise ConfigError(_unknown_top_level(key, dataset_names, raw.get("dataset_name", DEFAULT_DATASET)))
    elif head == "optimizer" or head in dataset_names:
        schema = OPTIMIZER if head == "optimizer" else DATASET_SECTION
        if len(parts) != 2 or parts[1] not in schema:
            raise ConfigError(unknown_name("config key", ".".join(parts[1:]), list(schema), f"{head}.",
                                           f"keys under {head}"))
    elif head != "model_options":
        guess = nearest(head, list(TOP_LEVEL) + ["optimizer"] + list(dataset_names))
        raise ConfigError(f"unknown config key '{key}'" + (f"; did you mean '{guess}'?" if guess else ""))
    try:
        value = parse_yaml(text) if text.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {key}: cannot parse value '{text}' ({error.__class__.__name__})") from None
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key '{part}' is not a section")
    previous = node.get(parts[-1])
    if isinstance(value, dict) and isinstance(previous, dict) and (len(parts) > 1 or head in SECTIONS
                                                                   or head in dataset_names):
        node[parts[-1]] = previous | value  # a section keeps the keys the override does not give
    else:
        node[parts[-1]] = value


def _unknown_top_level(key: str, dataset_names: list[str], dataset: Any) -> str:
    """A top-level key no schema knows: the nearest top-level name, else the nearest key of a section
    (`num_epoch` -> `DIGITS.num_epochs`), else the valid names."""
    guess = nearest(key, list(TOP_LEVEL) + ["optimizer"] + list(dataset_names))
    if guess is None:
        section = nearest(key, list(DATASET_SECTION))
        if section is not None:
            guess = f"{dataset if isinstance(dataset, str) and dataset else 'DATASET'}.{section}"
        elif (in_optimizer := nearest(key, list(OPTIMIZER))) is not None:
            guess = f"optimizer.{in_optimizer}"
    if guess is not None:
        return f"unknown config key '{key}'; did you mean '{guess}'?"
    return (f"unknown config key '{key}'; valid keys: {', '.join(TOP_LEVEL)}, optimizer, and a section per "
            f"dataset ({', '.join(dataset_names)})")


SECTIONS = ("optimizer", "model_options")  # besides the dataset sections: mappings that --set merges into


def read_yaml_file(path: Path, kind: str) -> Any:
    """Parse a YAML file; a missing, unreadable or malformed file is a one-line ConfigError."""
    try:
        return parse_yaml(Path(path).read_text())
    except FileNotFoundError:
        where = "" if Path(path).is_absolute() else f" in the current folder, '{Path.cwd()}'"
        raise ConfigError(f"{kind} file '{path}' not found{where}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {kind} file '{path}': {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{kind} file '{path}' is not valid YAML: {str(error).splitlines()[0]}") from None


def load_config(path: str | Path, overrides: list[str] = (), dataset_names: list[str] | None = None,
                model_names: list[str] | None = None) -> dict:
    """Read, override and validate a training config (None: the registries' names, importing torch)."""
    if dataset_names is None:
        from .datasets import list_datasets

        dataset_names = list_datasets()
    path = Path(path)
    raw = read_yaml_file(path, "config")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of keys")
    for assignment in overrides:
        apply_override(raw, assignment, dataset_names)
    return validate(raw, dataset_names, model_names)


@dataclass(frozen=True)
class TrainSettings:
    """The resolved settings of one (dataset, model, modality, train size) cell."""

    config: dict
    modality: str

    @property
    def section(self) -> dict:
        """The config section of the run's dataset (num_epochs, mem_examples, ...)."""
        return self.config[self.config["dataset_name"]]

    @property
    def model(self) -> str:
        return self.config["model"]

    @property
    def dataset_name(self) -> str:
        return self.config["dataset_name"]

    @property
    def train_examples(self) -> int:
        return self.config["train_examples"]

    @property
    def mem_examples(self) -> int:
        return self.section["mem_examples"]

    @property
    def num_classes(self) -> int:
        """The dataset's class count (a config value, kept for the original layout, must agree)."""
        from .datasets import get_spec
        from .cli import ConfigError

        classes = get_spec(self.dataset_name).num_classes
        stated = self.section.get("num_classes")
        if stated is not None and stated != classes:
            raise ConfigError(f"config key '{self.dataset_name}.num_classes' is {stated}, but {self.dataset_name} "
                              f"has {classes} classes; remove the key or set it to {classes}")
        return classes

    @property
    def num_epochs(self) -> int:
        return self.section["num_epochs"]

    @property
    def cell_folder(self) -> Path:
        return cell_folder(self.config["models_dir"], self.dataset_name, self.modality, self.model,
                           self.train_examples, self.config["cell_tag"])

    def comparable(self) -> dict:
        """The settings that change numbers: resuming requires them unchanged. Not EXECUTION_KEYS, not the
        sections of other datasets, and not the keys the modality does not read (a std run is the same run
        whatever memory size is set)."""
        settings = {}
        for key, value in self.config.items():
            other_dataset = isinstance(value, dict) and key not in SECTIONS and key != self.dataset_name
            if key in EXECUTION_KEYS or other_dataset or not reads(self.modality, key):
                continue
            if key == self.dataset_name:
                value = {k: v for k, v in value.items() if reads(self.modality, f"{key}.{k}")}
            settings[key] = value
        return settings | {"modality": self.modality}

    def comparable_json(self) -> dict:
        """`comparable()` as it reads back from a record or a resume file (tuples become lists)."""
        return json.loads(json.dumps(self.comparable()))


def settings_notes(settings: TrainSettings) -> list[str]:
    """Lines about valid settings that do not do what they may seem to (printed before training)."""
    section, notes = settings.section, []
    late = [m for m in section["opt_milestones"] if m >= settings.num_epochs]
    if section["lr_schedule"] == "multistep" and late:
        notes.append(f"note: {settings.dataset_name}.opt_milestones {late} are not below num_epochs "
                     f"({settings.num_epochs}): the learning rate never drops there")
    return notes


def run_seed(run: int) -> int:
    """The seed of run `run` (1-based, as its files and output lines): the original trained run k with
    seed k - 1, which seeds its split and every random stream. The one place this is derived."""
    if run < 1:
        raise ValueError(f"runs are numbered from 1, got {run}")
    return run - 1


def cell_folder(models_dir: str | Path, dataset: str, modality: str, model: str, train_examples: int,
                tag: str = "") -> Path:
    """models/DATASET/MODALITY/MODEL/TRAIN_EXAMPLES, as in the original, or TRAIN_EXAMPLES@tag for a tagged
    cell (a sweep's; never the name of a plain cell): the one place this path is built."""
    return Path(models_dir) / dataset / modality / model / (f"{train_examples}@{tag}" if tag else str(train_examples))


def _flatten(settings: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value and key != "model_options":
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def settings_difference(saved: dict, current: dict) -> list[str]:
    """The comparable settings that differ between a recorded run and the current config, as dotted keys
    (`DIGITS.num_epochs`), sorted."""
    old, new = _flatten(saved), _flatten(current)
    return sorted(k for k in set(old) | set(new) if old.get(k, _ABSENT) != new.get(k, _ABSENT))


_ABSENT = object()


def settings_changes(saved: dict, current: dict) -> str:
    """`DIGITS.num_epochs: 8 recorded, 1 now; ...`: every differing setting with both values."""
    old, new = _flatten(saved), _flatten(current)

    def shown(flat: dict, key: str) -> str:
        return json.dumps(flat[key]) if key in flat else "(absent)"

    return "; ".join(f"{key}: {shown(old, key)} recorded, {shown(new, key)} now"
                     for key in settings_difference(saved, current))
