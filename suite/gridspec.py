"""Grid files: which cells (dataset, model, train size, modality) a grid holds, and each cell's config.

A grid file is YAML:

    base_config: config/train.yaml     # a training config, read as train.py reads --config, or a
                                       # mapping {default: config/train.yaml, vit: config/vit.yaml}
                                       # when some models train with a recipe of their own
    datasets: [SVHN, CIFAR10]
    models: [mobilenet, resnet18]
    train_examples: [1000, 2000]
    modalities: [std, memory, encoder_memory]
    runs: 15                           # seeds 0..runs-1 of every cell
    overrides: [SVHN.num_epochs=2]     # optional, as train.py --set takes them (or a mapping)
    sweep:                             # optional: config keys and their values; every combination is a
      DIGITS.mem_examples: [25, 100]   # cell of its own, in the folder TRAIN_EXAMPLES@key=value,...
      memory_sampling: [uniform, class_balanced]

Relative paths (base_config, and the config's models_dir / dataset_dir) are taken from the current
directory, as train.py takes them; the grid's plan (suite.grid.make_plan) pins them there, so every
executor's workers and tasks use the same places wherever they start. This module does not import
torch, so the report stays fast.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import TOP_LEVEL, TrainSettings, load_config, parse_yaml, read_yaml_file, reads
from .cli import ConfigError

GRID_KEYS = ("base_config", "datasets", "models", "train_examples", "modalities", "runs", "overrides", "sweep")
# Set per cell by the grid; an override or a sweep of them would silently lose, so it is refused.
CELL_KEYS = ("dataset_name", "model", "train_examples", "runs", "cell_tag")
Sweep = tuple[tuple[str, Any], ...]  # (config key, value) pairs of one combination, in the grid's key order
DEFAULT = "default"  # the base_config entry of models without one of their own


@dataclass(frozen=True, order=True)
class Cell:
    dataset: str
    model: str
    train_examples: int
    modality: str
    sweep: Sweep = ()  # the swept config values of this cell (none outside a sweep)

    @property
    def tag(self) -> str:
        return sweep_tag(self.sweep)

    @property
    def label(self) -> str:
        """DATASET/MODALITY/MODEL/TRAIN_EXAMPLES[@tag], the cell's folder under models_dir."""
        return f"{self.dataset}/{self.modality}/{self.model}/{self.train_examples}" + (f"@{self.tag}" if self.tag else "")


def frozen(value: Any) -> Any:
    """A swept value made hashable (lists become tuples), so that cells can key dictionaries."""
    return tuple(frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


def value_text(value: Any) -> str:
    """A swept value as folder names and tables show it."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))  # tuples as lists


def sweep_tag(sweep: Sweep) -> str:
    """`key=value,key=value`: what a swept cell's folder adds to the plain name (config key cell_tag).
    Keys in sorted order, so that reordering a grid file's `sweep:` keeps finding its finished runs."""
    return ",".join(f"{key}={value_text(value)}" for key, value in sorted(sweep))


@dataclass(frozen=True)
class Grid:
    path: Path
    base_configs: dict  # model name or "default" -> training config path
    datasets: tuple[str, ...]
    models: tuple[str, ...]
    train_examples: tuple[int, ...]
    modalities: tuple[str, ...]
    runs: int
    overrides: tuple[str, ...]  # the grid's, then the command line's
    sweep: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (config key, its values), in the file's order

    @property
    def sweep_keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.sweep)

    def sweeps(self) -> list[Sweep]:
        """Every combination of the swept values (one empty combination without a sweep)."""
        return [tuple(zip(self.sweep_keys, map(frozen, values)))
                for values in itertools.product(*(v for _, v in self.sweep))]

    @property
    def name(self) -> str:
        return self.path.stem

    def cells(self) -> list[Cell]:
        """Every cell, datasets outermost, then models, sizes, swept values and modalities (the order work
        is handed out). A modality that does not read a swept key (std and the memory size) gets one cell
        for all its values: `cell`."""
        cells = [self.cell(d, m, n, v, s) for d, m, n, s, v in
                 itertools.product(self.datasets, self.models, self.train_examples, self.sweeps(), self.modalities)]
        return list(dict.fromkeys(cells))

    def cell(self, dataset: str, model: str, train_examples: int, modality: str, sweep: Sweep = ()) -> Cell:
        """The cell of a modality under the swept values `sweep`: the swept keys the modality does not read
        are left out (they would repeat the same runs), so it keeps the base config's values of them."""
        return Cell(dataset, model, train_examples, modality, tuple((k, v) for k, v in sweep if reads(modality, k)))

    def override_notes(self) -> list[str]:
        """A line per override (the grid file's or --set) of a swept key: the sweep's values win."""
        keys = dict.fromkeys(assignment.partition("=")[0].strip() for assignment in self.overrides)
        return [f"note: {key} is swept by the grid: the sweep's values apply, not the override's" for key in keys
                if key in self.sweep_keys]

    def unread(self, modality: str) -> tuple[str, ...]:
        """The swept keys `modality` does not read."""
        return tuple(key for key in self.sweep_keys if not reads(modality, key))

    def base_config(self, model: str) -> Path:
        return self.base_configs.get(model, self.base_configs[DEFAULT])

    def cell_settings(self, cell: Cell, dataset_names: list[str] | None = None,
                      model_names: list[str] | None = None) -> TrainSettings:
        """The validated training settings of a cell. Names None: ask the registries (imports torch)."""
        assignments = list(self.overrides) + [f"{key}={json.dumps(value)}" for key, value in cell.sweep] + [
            f"dataset_name={cell.dataset}", f"model={cell.model}", f"train_examples={cell.train_examples}",
            f"runs={self.runs}", f"cell_tag={json.dumps(cell.tag)}"]
        base = self.base_config(cell.model)
        try:
            config = load_config(base, assignments, dataset_names, model_names)
        except ConfigError as error:
            hint = "" if base.is_absolute() or base.exists() else (
                " (a grid file's relative paths are read from the current folder: run grid.py from the folder "
                "they are relative to, the repository's for config/*.yaml, or give absolute paths)")
            raise ConfigError(f"grid '{self.path}', cell {cell.label}: {error}{hint}") from None
        return TrainSettings(config, cell.modality)

    def lenient_dataset_names(self) -> list[str]:
        """The dataset sections of the base config plus the grid's datasets, without importing the registry.

        Used by the report, which must not import torch; the runner validates against the registry.
        """
        sections: list[str] = []
        for path in self.base_configs.values():
            try:
                raw = parse_yaml(Path(path).read_text()) or {}
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                raw = {}  # load_config reports the problem properly
            if isinstance(raw, dict):
                sections += [k for k, v in raw.items() if isinstance(v, dict) and k not in TOP_LEVEL
                             and k not in ("optimizer", "model_options")]
        return list(dict.fromkeys(sections + list(self.datasets)))


# ---- parsing --------------------------------------------------------------------------------
def _problem(path: Path, key: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"grid file '{path}': key '{key}' must be {expected}, got {value!r}")


def _names(path: Path, raw: dict, key: str) -> tuple[str, ...]:
    value = raw[key]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise _problem(path, key, "a non-empty list of names", value)
    if len(set(value)) != len(value):
        raise _problem(path, key, "a list without repeats", value)
    return tuple(value)


def _override_list(path: Path, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, dict):  # {dotted.key: value} -> "dotted.key=<value as YAML>"
        return tuple(f"{key}={json.dumps(item)}" for key, item in value.items())
    if isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value):
        return tuple(value)
    raise _problem(path, "overrides", "a list of 'dotted.key=value' strings or a mapping", value)


def _sweep(path: Path, value: Any) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """`sweep:` as ((key, values), ...): a mapping of config keys (dotted as for overrides) to non-empty
    lists of distinct values; a key the grid sets per cell is refused."""
    if value is None:
        return ()
    if not isinstance(value, dict) or not value:
        raise _problem(path, "sweep", "a mapping of config keys to lists of values", value)
    for key, values in value.items():
        if not isinstance(values, list) or not values or len({json.dumps(v) for v in values}) != len(values):
            raise _problem(path, f"sweep.{key}", "a non-empty list of distinct values", values)
    check_overrides(path, [f"{key}=" for key in value])
    return tuple((str(key), tuple(values)) for key, values in value.items())


def check_overrides(path: Path | str, overrides: tuple[str, ...] | list[str]) -> None:
    for assignment in overrides:
        key = assignment.partition("=")[0].strip()
        if key in CELL_KEYS:
            grid_key = {"dataset_name": "datasets", "model": "models", "cell_tag": "sweep"}.get(key, key)
            raise ConfigError(f"grid '{path}': '{key}' is set per cell by the grid key '{grid_key}', "
                              "not by an override or a sweep")


def load_grid(path: str | Path, extra_overrides: list[str] | tuple[str, ...] = ()) -> Grid:
    """Read and check a grid file (not the cells' configs: see `Grid.cell_settings`)."""
    path = Path(path)
    raw = read_yaml_file(path, "grid")
    if not isinstance(raw, dict):
        raise ConfigError(f"grid file '{path}' must hold a mapping with the keys {', '.join(GRID_KEYS)}")
    unknown = sorted(set(raw) - set(GRID_KEYS))
    if unknown:
        raise ConfigError(f"grid file '{path}': unknown key '{unknown[0]}'; valid keys: {', '.join(GRID_KEYS)}")
    missing = [key for key in GRID_KEYS if key not in raw and key not in ("overrides", "sweep")]
    if missing:
        raise ConfigError(f"grid file '{path}': key '{missing[0]}' is missing")
    base = raw["base_config"]
    if isinstance(base, str) and base:
        base = {DEFAULT: base}
    if not isinstance(base, dict) or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in base.items()):
        raise _problem(path, "base_config", f"the path of a training config, or a mapping of model names "
                                            f"and '{DEFAULT}' to such paths", raw["base_config"])
    sizes = raw["train_examples"]
    if (not isinstance(sizes, list) or not sizes or len(set(sizes)) != len(sizes)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes)):
        raise _problem(path, "train_examples", "a non-empty list of distinct positive integers", sizes)
    runs = raw["runs"]
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
        raise _problem(path, "runs", "an integer of at least 1", runs)
    overrides = _override_list(path, raw.get("overrides")) + tuple(extra_overrides)
    check_overrides(path, overrides)
    sweep = _sweep(path, raw.get("sweep"))
    models = _names(path, raw, "models")
    uncovered = [m for m in models if m not in base and DEFAULT not in base]
    if uncovered:
        raise ConfigError(f"grid file '{path}': base_config has no entry for model '{uncovered[0]}' "
                          f"and no '{DEFAULT}' entry")
    return Grid(path=path, base_configs={k: Path(v) for k, v in base.items()}, datasets=_names(path, raw, "datasets"),
                models=models, train_examples=tuple(sizes),
                modalities=_names(path, raw, "modalities"), runs=runs, overrides=overrides, sweep=sweep)
