"""Tiny trained checkpoints shared by the evaluation and explanation tests (trained once per session).

- encoder_memory: two runs written by train.py through its CLI (4 short epochs, so that accuracies
  are above chance and differ between evaluation passes); its stdout is kept for comparisons.
- std and memory: one run each, 1 epoch, trained in-process with `train_run`.
All on the tiny CIFAR10 of conftest, shufflenet, 100 training images, memories of 10, on the CPU (so the
tests also hold on a machine with a GPU).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets
from conftest import run_script, tiny_config, write_config
from suite.config import TrainSettings, validate
from suite.training import train_run

CELL = Path("CIFAR10")
_CACHE: dict[str, "TrainedRuns"] = {}


@dataclass(frozen=True)
class TrainedRuns:
    root: Path
    dataset_dir: Path
    folders: dict[str, Path]  # modality -> folder of the cell
    train_stdout: str  # what train.py printed for the encoder_memory cell

    def checkpoint(self, modality: str, run: int = 1) -> Path:
        return self.folders[modality] / f"{run}.pt"


def _section(epochs: int) -> dict:
    return {"num_classes": 10, "num_epochs": epochs, "opt_milestones": [epochs], "mem_examples": 10,
            "lr_schedule": "multistep", "validation_size": 20}


def trained_runs(tmp_path_factory, dataset_dir: Path) -> TrainedRuns:
    if "runs" in _CACHE:
        return _CACHE["runs"]
    root = tmp_path_factory.mktemp("trained")
    config = tiny_config(root, dataset_dir, runs=2, batch_size_train=16, eval_passes=3, device="cpu",
                         CIFAR10=_section(4))
    config["optimizer"]["learning_rate"] = 0.01
    path = write_config(root / "encoder_memory.yaml", config)
    result = run_script("train.py", "--modality=encoder_memory", f"--config={path}", cwd=root)
    assert result.returncode == 0, result.stderr
    folders = {"encoder_memory": root / "models" / CELL / "encoder_memory" / "shufflenet" / "100"}
    for modality in ("std", "memory"):
        raw = tiny_config(root, dataset_dir, runs=1, device="cpu", CIFAR10=_section(1))
        settings = TrainSettings(validate(raw, datasets.list_datasets()), modality)
        train_run(settings, 0)
        folders[modality] = settings.output_dir
    _CACHE["runs"] = TrainedRuns(root, dataset_dir, folders, result.stdout)
    return _CACHE["runs"]
