"""Tiny trained checkpoints shared by the evaluation and explanation tests (trained once per session).

A tiny ViT (one block of width 32, mean pooling) trained with Adam learns the tiny CIFAR10 of
conftest (class-dependent stripes) in well under a second per run, so the tests read checkpoints
whose numbers mean something: the runs are far above chance (tests/test_science.py checks it) and
memory models give different accuracies from one evaluation pass to the next.

- encoder_memory: two runs written by train.py through its CLI (10 epochs); its stdout is kept.
- std (6 epochs) and memory (30 epochs: the memory-only head learns slowly): one run each,
  trained in-process with `train_run`.
All with 100 training images, memories of 10, on the CPU (so the tests also hold on a machine with
a GPU). A shufflenet memory checkpoint (1 epoch, not meant to learn) stands for the CNNs where a
test needs an encoder with BatchNorm or a model the original suite could have written.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets
from conftest import run_script, tiny_config, write_config
from suite.config import TrainSettings, validate
from suite.training import train_run

CELL = Path("CIFAR10")
MODEL = "vit"
TINY_VIT = {"patches": 4, "depth": 1, "hidden": 32, "heads": 2, "mlp_hidden": 32, "pooling": "mean"}
EPOCHS = {"encoder_memory": 10, "std": 6, "memory": 30}
CHANCE = 10.0  # % on 10 balanced classes
_CACHE: dict[str, "TrainedRuns"] = {}


@dataclass(frozen=True)
class TrainedRuns:
    root: Path
    dataset_dir: Path
    folders: dict[str, Path]  # modality -> folder of the cell ("cnn": the shufflenet memory cell)
    train_stdout: str  # what train.py printed for the encoder_memory cell

    def checkpoint(self, modality: str, run: int = 1) -> Path:
        return self.folders[modality] / f"{run}.pt"


def _section(epochs: int) -> dict:
    return {"num_classes": 10, "num_epochs": epochs, "opt_milestones": [epochs], "mem_examples": 10,
            "lr_schedule": "multistep", "validation_size": 20}


def vit_config(root: Path, dataset_dir: Path, modality: str, **top_level) -> dict:
    """The shared runs' recipe: tiny ViT, Adam at 3e-3, batches of 16, 3 evaluation passes."""
    options = dict(model=MODEL, model_options=dict(TINY_VIT), batch_size_train=16, eval_passes=3, device="cpu",
                   optimizer={"name": "adam", "learning_rate": 0.003, "weight_decay": 0.0},
                   CIFAR10=_section(EPOCHS[modality])) | top_level
    return tiny_config(root, dataset_dir, **options)


def trained_runs(tmp_path_factory, dataset_dir: Path) -> TrainedRuns:
    if "runs" in _CACHE:
        return _CACHE["runs"]
    root = tmp_path_factory.mktemp("trained")
    path = write_config(root / "encoder_memory.yaml", vit_config(root, dataset_dir, "encoder_memory", runs=2))
    result = run_script("train.py", "--modality=encoder_memory", f"--config={path}", cwd=root)
    assert result.returncode == 0, result.stderr
    folders = {"encoder_memory": root / "models" / CELL / "encoder_memory" / MODEL / "100"}
    for modality in ("std", "memory"):
        raw = vit_config(root, dataset_dir, modality, runs=1)
        settings = TrainSettings(validate(raw, datasets.list_datasets()), modality)
        train_run(settings, 1)
        folders[modality] = settings.cell_folder
    cnn = TrainSettings(validate(tiny_config(root / "cnn", dataset_dir, runs=1, device="cpu"),
                                 datasets.list_datasets()), "encoder_memory")
    train_run(cnn, 1)
    folders["cnn"] = cnn.cell_folder
    _CACHE["runs"] = TrainedRuns(root, dataset_dir, folders, result.stdout)
    return _CACHE["runs"]
