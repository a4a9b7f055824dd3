"""Reopen a trained run: checkpoint -> model, training settings, the run's data and its seed.

Every evaluation and explanation script goes through `restore_run`, so they all agree on where a
run's numbers come from:

- Checkpoints written by train.py carry the full training config and the run's seed (its 0-based
  index). The data are rebuilt from that config, so the memory pool is the run's own training subset.
- Checkpoints of the original suite hold only the seven original keys. The config then comes from
  `config/train.yaml` (the original values) with the checkpoint's model, dataset, size, classes and
  memory size filled in. The seed comes from the file name, `<k>.pt` -> k - 1, as the original
  eval_dir.py did (train.py seeds run k with k - 1); any other name gets 42, the split seed that the
  original eval.py and the explanation scripts used.

Checkpoints are read with `weights_only=True` and `map_location`, so a file saved on a GPU opens on a
CPU-only machine and a crafted file cannot run code.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

import architectures
import datasets
from .checkpoints import RUN_FILE, load_checkpoint, run_files
from .config import TrainSettings, load_config, validate
from .errors import CheckpointError, ConfigError, UserError

REPO = Path(__file__).resolve().parents[1]
ORIGINAL_DEFAULTS = REPO / "config" / "train.yaml"
ORIGINAL_SPLIT_SEED = 42  # the split seed of the original eval.py and explanation scripts


@dataclass
class RestoredRun:
    path: Path
    model: architectures.MemoryWrapNet  # in eval mode, on `device`
    settings: TrainSettings
    data: datasets.RunData  # the run's split, loaders and (memory models) memory sampler
    seed: int  # 0-based run index: the split seed and the root of every derived random stream
    run: int | None  # 1-based run number, when known
    device: torch.device
    checkpoint: dict

    @property
    def label(self) -> str:
        s = self.settings
        return f"{s.dataset_name}/{s.modality}/{s.model}/{s.train_examples}"


def seed_from_name(path: Path) -> int:
    """Original-suite checkpoints: `<k>.pt` is run k, trained with seed k - 1; other names get 42."""
    match = RUN_FILE.match(Path(path).name)
    if match and int(match.group(1)) >= 1:
        return int(match.group(1)) - 1
    return ORIGINAL_SPLIT_SEED


def _original_config(checkpoint: dict) -> dict:
    """The original training config (config/train.yaml) completed with what the checkpoint says."""
    raw = copy.deepcopy(load_config(ORIGINAL_DEFAULTS))
    name = checkpoint["dataset_name"]
    section = raw.get(name, {"num_epochs": 1})
    section = dict(section, num_classes=int(checkpoint["num_classes"]), mem_examples=int(checkpoint["mem_examples"]))
    raw.update({name: section, "model": checkpoint["model_name"], "dataset_name": name,
                "train_examples": int(checkpoint["train_examples"])})
    return raw


def checkpoint_config(checkpoint: dict, path: Path) -> dict:
    """The validated training config of a checkpoint (its own, or the original defaults)."""
    if isinstance(checkpoint.get("config"), dict):
        raw = copy.deepcopy(checkpoint["config"])
    else:
        raw = _original_config(checkpoint)
    try:
        config = validate(raw, datasets.list_datasets())
    except ConfigError as error:
        raise CheckpointError(f"checkpoint '{path}' holds an unusable training config ({error})") from None
    for key, value in (("model", checkpoint["model_name"]), ("dataset_name", checkpoint["dataset_name"]),
                       ("train_examples", checkpoint["train_examples"])):
        if config[key] != value:
            raise CheckpointError(f"checkpoint '{path}' is inconsistent: its config says {key}={config[key]!r} "
                                  f"but the checkpoint says {value!r}")
    return config


def check_expected(checkpoint: dict, path: Path, dataset: str | None, modality: str | None) -> None:
    """`--dataset` / `--modality` are optional; when given they must describe the checkpoint."""
    for flag, expected, actual in (("dataset", dataset, checkpoint["dataset_name"]),
                                   ("modality", modality, checkpoint["modality"])):
        if expected is not None and expected != actual:
            raise UserError(f"--{flag}={expected} does not match checkpoint '{path}', which holds a "
                            f"{checkpoint['dataset_name']} {checkpoint['modality']} model")


def read_checkpoint(path: str | Path, dataset: str | None = None, modality: str | None = None,
                    map_location: str | torch.device = "cpu") -> dict:
    """Load (weights only) and check the optional expectations, without building anything."""
    path = Path(path)
    checkpoint = load_checkpoint(path, map_location=map_location)
    if checkpoint["modality"] not in architectures.MODALITIES:
        raise CheckpointError(f"checkpoint '{path}' has unknown modality {checkpoint['modality']!r}")
    check_expected(checkpoint, path, dataset, modality)
    return checkpoint


def restore_run(path: str | Path, dataset_dir: str | None = None, batch_size_test: int | None = None,
                device: torch.device | str = "cpu", dataset: str | None = None, modality: str | None = None,
                require_memory: bool = False) -> RestoredRun:
    """Rebuild a run from its checkpoint: model (eval mode), settings, data and seed.

    `dataset_dir` and `batch_size_test` replace the training config's values when given; note that
    the test batch size changes memory-model numbers (a test batch shares one memory draw).
    """
    path = Path(path)
    device = torch.device(device)
    checkpoint = read_checkpoint(path, dataset, modality, map_location=device)
    if require_memory and checkpoint["modality"] == "std":
        raise UserError(f"checkpoint '{path}' holds a std model, which has no memory to explain; "
                        "use a memory or encoder_memory model")
    config = checkpoint_config(checkpoint, path)
    if dataset_dir is not None:
        config["dataset_dir"] = str(dataset_dir)
    if batch_size_test is not None:
        if batch_size_test < 1:
            raise UserError(f"--batch_size_test must be at least 1, got {batch_size_test}")
        config["batch_size_test"] = batch_size_test
    settings = TrainSettings(config, checkpoint["modality"])
    if settings.num_classes != checkpoint["num_classes"] or settings.mem_examples != checkpoint["mem_examples"]:
        raise CheckpointError(f"checkpoint '{path}' is inconsistent: num_classes / mem_examples differ from its config")
    seed = checkpoint["seed"] if isinstance(checkpoint.get("seed"), int) else seed_from_name(path)
    run = checkpoint["run"] if isinstance(checkpoint.get("run"), int) else None
    if run is None and RUN_FILE.match(path.name):
        run = int(RUN_FILE.match(path.name).group(1))
    try:
        model = architectures.get_model(settings.model, settings.num_classes, settings.modality,
                                        **config["model_options"])
        model.load_state_dict(checkpoint["model_state_dict"])
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"checkpoint '{path}': cannot rebuild its model ({str(error).splitlines()[0]})") from None
    except RuntimeError as error:  # load_state_dict: missing / unexpected keys, shape mismatches
        raise CheckpointError(f"checkpoint '{path}': weights do not fit model '{settings.model}' "
                              f"({str(error).splitlines()[0][:200]})") from None
    model.to(device).eval()
    data = datasets.build_run_data(config, seed, model.uses_memory, pin_memory=device.type == "cuda")
    return RestoredRun(path, model, settings, data, seed, run, device, checkpoint)


def folder_runs(folder: str | Path, note=print) -> list[tuple[int, Path]]:
    """The `<N>.pt` run files of a folder in numeric order; other `.pt` files are skipped with a note."""
    runs, others = run_files(Path(folder))
    for other in others:
        note(f"note: skipping '{other}': not a run checkpoint (<N>.pt)")
    if not runs:
        raise UserError(f"folder '{folder}' holds no run checkpoints (<N>.pt)")
    return runs
