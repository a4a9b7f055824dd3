"""Shared fixtures: tiny datasets in the official formats and a tiny training config."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import tiny_data

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_dataset_dir(tmp_path_factory) -> Path:
    """CIFAR10 (200 train / 50 test), SVHN (200 / 50) and CINIC10 (30 per split) in their real formats."""
    root = tmp_path_factory.mktemp("datasets")
    tiny_data.write_cifar10(root)
    tiny_data.write_svhn(root)
    tiny_data.write_cinic10(root)
    return root


def tiny_config(tmp_path: Path, dataset_dir: Path, **top_level) -> dict:
    """A config that trains shufflenet for one short epoch on the tiny CIFAR10."""
    section = {"num_classes": 10, "num_epochs": 1, "opt_milestones": [1], "mem_examples": 10,
               "lr_schedule": "multistep", "validation_size": 20}
    config = {
        "model": "shufflenet", "save": True, "train_examples": 100, "runs": 2, "batch_size_train": 32,
        "batch_size_test": 25, "optimizer": {"name": "sgd", "learning_rate": 0.05, "weight_decay": 5e-4,
                                             "momentum": 0.9, "nesterov": True},
        "dataset_dir": str(dataset_dir), "dataset_name": "CIFAR10", "download": False,
        "models_dir": str(tmp_path / "models"), "eval_passes": 2,
        "CIFAR10": dict(section), "SVHN": dict(section), "CINIC10": dict(section, lr_schedule="cosine"),
    }
    config.update(top_level)
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def run_script(script: str, *args: str, cwd: Path | None = None, timeout: float = 600,
               env: dict | None = None, repo: Path = REPO) -> subprocess.CompletedProcess:
    """Run a top-level script of `repo` through its CLI, as a user would (`env`: extra environment variables)."""
    path = os.pathsep.join([str(repo)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    environment = dict(os.environ, PYTHONPATH=path) | (env or {})  # the caller's PYTHONPATH stays reachable
    return subprocess.run([sys.executable, str(repo / script), *args], cwd=cwd or repo, env=environment,
                          capture_output=True, text=True, timeout=timeout)
