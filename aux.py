"""The original suite's `aux` module: the functions its scripts imported, now thin names over `suite/`.

Kept so that the original's imports (`from aux import set_seed, get_model, ...`) resolve. `set_seed`
and `get_model` behave as the original's; the others are this suite's counterparts with their own
signatures (`get_loaders` returns a resident `RunData`, not DataLoaders; the original's `eval_memory` /
`eval_std` are `evaluate`; `train_run` takes a 1-based run number), so code beyond the imports needs
porting. Note: `aux` is a reserved file name on Windows, so this repository checks out on Linux and
macOS only (as the original).
"""
from __future__ import annotations

from architectures import get_model
from suite.data import build_run_data as get_loaders, set_seed
from suite.run_files import load_checkpoint, save_torch_file
from suite.evaluation import evaluate
from suite.training import train_epoch, train_run

__all__ = ["get_model", "get_loaders", "save_torch_file", "load_checkpoint", "evaluate", "set_seed", "train_epoch",
           "train_run"]
