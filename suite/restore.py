"""Reopen a trained run: checkpoint -> model, training settings, the run's data and its seed.

Every evaluation and explanation script goes through `restore_run`, so they all agree on where a
run's numbers come from:

- Checkpoints written by train.py carry the full training config, the run's number and its seed (its
  0-based index). The data are rebuilt from that config, so the memory pool is the run's own training
  subset. Such a checkpoint describes itself: renamed, copied or moved, it gives the same numbers.
- Checkpoints of the original suite hold only the seven original keys. The config is then the
  original recipe (`ORIGINAL_CONFIG`, the values of the original config/train.yaml) with the
  checkpoint's model, dataset, size, classes and memory size filled in. The seed comes from the file
  name, `<k>.pt` -> k - 1, as the original eval_dir.py did (train.py seeds run k with k - 1); any
  other name gets 42, the split seed that the original eval.py and the explanation scripts used.

Checkpoints are read with `weights_only=True` and `map_location`, so a file saved on a GPU opens on a
CPU-only machine and a crafted file cannot run code.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import architectures
from .run_files import RUN_FILE, load_checkpoint, run_checkpoints
from .config import TrainSettings, run_seed, validate
from .data import RunData, build_run_data
from .datasets import get_spec, list_datasets
from .cli import CheckpointError, ConfigError, UserError
from .recipe import build_model, resolve_device

ORIGINAL_SPLIT_SEED = 42  # the split seed of the original eval.py and explanation scripts
ORIGINAL_CONFIG: dict[str, Any] = {  # the original config/train.yaml, less the per-cell keys
    "save": True, "runs": 15, "batch_size_train": 128, "batch_size_test": 500, "dataset_dir": "datasets",
    "optimizer": {"name": "sgd", "learning_rate": 0.1, "weight_decay": 5e-4, "momentum": 0.9, "nesterov": True},
}


@dataclass(frozen=True)
class CheckpointOptions:
    """What every checkpoint command shares (--dataset, --modality, --dir_dataset, --batch_size_test,
    --device). `dataset` / `modality` are optional checks; the others replace the training config's."""

    dataset: str | None = None
    modality: str | None = None
    dataset_dir: str | None = None
    batch_size_test: int | None = None
    device: str = "auto"

    @classmethod
    def from_flags(cls, flags) -> "CheckpointOptions":
        return cls(flags.dataset, flags.modality, flags.dir_dataset, flags.batch_size_test, flags.device or "auto")

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)


@dataclass
class RestoredRun:
    path: Path
    model: architectures.MemoryWrapNet  # in eval mode, on `device`
    settings: TrainSettings
    data: RunData  # the run's subset and test set on `device`
    seed: int  # 0-based run index: the split seed and the root of every derived random stream
    run: int | None  # 1-based run number, when known
    device: torch.device
    checkpoint: dict

    @property
    def label(self) -> str:
        s = self.settings
        return f"{s.dataset_name}/{s.modality}/{s.model}/{s.train_examples}"

    @property
    def trained_config(self) -> dict:
        """The training config as the checkpoint holds it, before the command's --dir_dataset and
        --batch_size_test: what the results of default flags are computed with."""
        return checkpoint_config(self.checkpoint, self.path)


def seed_from_name(path: Path) -> int:
    """Original-suite checkpoints: `<k>.pt` is run k, trained with seed k - 1; other names get 42."""
    match = RUN_FILE.match(Path(path).name)
    if match and int(match.group(1)) >= 1:
        return run_seed(int(match.group(1)))
    return ORIGINAL_SPLIT_SEED


def held_run(checkpoint: dict, path: Path) -> int | None:
    """The 1-based run a checkpoint holds: the one it records (train.py's), whatever the file is called;
    for checkpoints of the original suite, `<k>.pt` -> run k (None for other names)."""
    if isinstance(checkpoint.get("run"), int):
        return checkpoint["run"]
    match = RUN_FILE.match(Path(path).name)
    return int(match.group(1)) if match else None


def _original_config(checkpoint: dict) -> dict:
    """The original recipe completed with what the checkpoint says."""
    name = checkpoint["dataset_name"]
    try:
        section = dict(get_spec(name).default_section)
    except UserError:
        section = {"num_epochs": 1}
    section.update(num_classes=int(checkpoint["num_classes"]), mem_examples=int(checkpoint["mem_examples"]))
    return copy.deepcopy(ORIGINAL_CONFIG) | {name: section, "model": checkpoint["model_name"], "dataset_name": name,
                                              "train_examples": int(checkpoint["train_examples"])}


def checkpoint_config(checkpoint: dict, path: Path) -> dict:
    """The validated training config of a checkpoint (its own, or the original recipe)."""
    raw = copy.deepcopy(checkpoint["config"]) if isinstance(checkpoint.get("config"), dict) else _original_config(checkpoint)
    try:
        config = validate(raw, list_datasets())
    except ConfigError as error:
        raise CheckpointError(f"checkpoint '{path}' holds an unusable training config ({error})") from None
    for key, value in (("model", checkpoint["model_name"]), ("dataset_name", checkpoint["dataset_name"]),
                       ("train_examples", checkpoint["train_examples"])):
        if config[key] != value:
            raise CheckpointError(f"checkpoint '{path}' is inconsistent: its config says {key}={config[key]!r} "
                                  f"but the checkpoint says {value!r}")
    return config


def check_expected(checkpoint: dict, path: Path, options: CheckpointOptions) -> None:
    """`--dataset` / `--modality` are optional; when given they must describe the checkpoint."""
    for flag, expected, actual in (("dataset", options.dataset, checkpoint["dataset_name"]),
                                   ("modality", options.modality, checkpoint["modality"])):
        if expected is not None and expected != actual:
            raise UserError(f"--{flag}={expected} does not match checkpoint '{path}', which holds a "
                            f"{checkpoint['dataset_name']} {checkpoint['modality']} model")


def read_checkpoint(path: str | Path, options: CheckpointOptions = CheckpointOptions(),
                    map_location: str | torch.device = "cpu") -> dict:
    """Load (weights only) and check the optional expectations, without building anything."""
    path = Path(path)
    checkpoint = load_checkpoint(path, map_location=map_location)
    if checkpoint["modality"] not in architectures.list_modalities():
        raise CheckpointError(f"checkpoint '{path}' has unknown modality {checkpoint['modality']!r}")
    check_expected(checkpoint, path, options)
    return checkpoint


def require_memory_model(checkpoint: dict, path: Path) -> None:
    if not architectures.get_head_class(checkpoint["modality"]).uses_memory:
        raise UserError(f"checkpoint '{path}' holds a std model, which has no memory to explain; "
                        "use a memory model (memory, encoder_memory, ...)")


def restore_run(path: str | Path, options: CheckpointOptions = CheckpointOptions(),
                require_memory: bool = False) -> RestoredRun:
    """Rebuild a run from its checkpoint: model (eval mode), settings, data and seed.

    Note that the test batch size changes memory-model numbers (a test batch shares one memory draw).
    """
    path, device = Path(path), options.torch_device
    checkpoint = read_checkpoint(path, options, map_location=device)
    if require_memory:
        require_memory_model(checkpoint, path)
    config = checkpoint_config(checkpoint, path)
    if options.dataset_dir is not None:
        config["dataset_dir"] = str(options.dataset_dir)
    if options.batch_size_test is not None:
        if options.batch_size_test < 1:
            raise UserError(f"--batch_size_test must be at least 1, got {options.batch_size_test}")
        config["batch_size_test"] = options.batch_size_test
    settings = TrainSettings(config, checkpoint["modality"])
    if settings.num_classes != checkpoint["num_classes"] or settings.mem_examples != checkpoint["mem_examples"]:
        raise CheckpointError(f"checkpoint '{path}' is inconsistent: num_classes / mem_examples differ from its config")
    seed = checkpoint["seed"] if isinstance(checkpoint.get("seed"), int) else seed_from_name(path)
    run = held_run(checkpoint, path)
    try:
        model = build_model(settings)
    except ConfigError as error:
        raise CheckpointError(f"checkpoint '{path}': cannot rebuild its model ({error})") from None
    try:
        model.load_state_dict(checkpoint["model_state_dict"])
    except RuntimeError as error:  # load_state_dict: missing / unexpected keys, shape mismatches
        raise CheckpointError(f"checkpoint '{path}': weights do not fit model '{settings.model}' "
                              f"({str(error).splitlines()[0][:200]})") from None
    model.to(device).eval()
    data = build_run_data(config, seed, device)
    return RestoredRun(path, model, settings, data, seed, run, device, checkpoint)


def folder_runs(folder: str | Path, note=print) -> list[tuple[int, Path]]:
    """The `<N>.pt` run files of a folder in numeric order of their names; other `.pt` files are skipped
    with a note. (The run a file holds is its checkpoint's own: `held_run`; folder commands number and
    order runs by it.)"""
    runs, others = run_checkpoints(Path(folder))
    for other in others:
        note(f"note: skipping '{other}': not a run checkpoint (<N>.pt)")
    if not runs:
        interrupted = sorted(Path(folder).glob("*.resume.pt"))
        raise UserError(f"folder '{folder}' holds no run checkpoints (<N>.pt)" + (
            f"; it holds interrupted run(s) ({', '.join(p.name for p in interrupted)}): finish them with train.py "
            "--continue_train" if interrupted else ""))
    return runs
