"""Everything a run needs to continue after a kill, in one object with `state_dict` / `load_state_dict`.

The resume keys live in one list (`RunState.KEYS`), written and read back by the same two methods,
so a new piece of state cannot be saved without being restored.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import RunData
from .errors import CheckpointError
from .seeding import global_rng_state, restore_global_rng_state

STATE_FORMAT = 2  # 1: the first release (DataLoader generator), not resumable by this version


@dataclass
class RunState:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    data: RunData  # its generators: batch order, flips, memory draws
    epoch: int = 0  # finished epochs
    train_seconds: float = 0.0

    KEYS = ("format", "epoch", "train_seconds", "model", "optimizer", "scheduler", "scaler", "data", "rng")

    def state_dict(self) -> dict:
        state = {"format": STATE_FORMAT, "epoch": self.epoch, "train_seconds": self.train_seconds,
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                 "data": self.data.state_dict(), "rng": global_rng_state()}
        assert tuple(state) == self.KEYS
        return state

    def load_state_dict(self, state: dict, where: str) -> None:
        if state.get("format") != STATE_FORMAT or any(key not in state for key in self.KEYS):
            raise CheckpointError(f"'{where}' was written by another version of the suite and cannot be resumed; "
                                  "delete it to restart that run, or use --overwrite")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.data.load_state_dict(state["data"])
        restore_global_rng_state(state["rng"])
        self.epoch, self.train_seconds = state["epoch"], state["train_seconds"]
