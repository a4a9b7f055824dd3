"""Opt-in `torch.compile` (config `compile: true`): one compiled model per process, reused by every
run that process trains, so a grid worker compiles once and not once per run.

The encoder (`forward_encoder`) and the head (`classify`) are compiled separately: evaluation and
explanations call them separately on cached encodings, and `forward` is eager glue between them.
A run reuses the cached model object and loads its freshly initialised weights into it (built
under the run's seed exactly as the eager path builds them), so guards hold and nothing recompiles.
"""
from __future__ import annotations

import functools
import json

import torch
from torch.utils._pytree import tree_map

import architectures
from .errors import ConfigError

BACKEND = "inductor"  # tests swap in a counting backend
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # torch.compile modes that replay CUDA graphs
_MODELS: dict[tuple, architectures.MemoryWrapNet] = {}
_CHECKED: set[str] = set()


def check_compile_works(device: torch.device, mode: str) -> None:
    """Compile and run a one-line function once per process and device type: a missing C compiler
    (CPU backend) or Triton (GPU) then stops the run before training, in one line."""
    if device.type in _CHECKED or BACKEND != "inductor":
        return
    try:
        probe = torch.compile(lambda x: x * 2 + 1, backend=BACKEND, mode=None if mode == "default" else mode)
        probe(torch.ones(4, device=device))
    except Exception as error:  # noqa: BLE001 - any failure of the toolchain means: cannot compile here
        first = (str(error).strip().splitlines() or [error.__class__.__name__])[0][:200]
        raise ConfigError(f"compile: true, but torch.compile does not work on {device.type} here "
                          f"({error.__class__.__name__}: {first}); set compile: false") from None
    _CHECKED.add(device.type)


def compiled_model(fresh: architectures.MemoryWrapNet, key: tuple, device: torch.device,
                   mode: str) -> architectures.MemoryWrapNet:
    """The process's compiled model for `key`, holding `fresh`'s weights (and buffers)."""
    full_key = key + (str(device), mode, BACKEND if isinstance(BACKEND, str) else id(BACKEND))
    cached = _MODELS.get(full_key)
    if cached is None:
        check_compile_works(device, mode)
        options = {} if mode == "default" else {"mode": mode}
        keep = _copied_outputs if mode in CUDA_GRAPH_MODES else (lambda function: function)
        fresh.forward_encoder = keep(torch.compile(fresh.forward_encoder, backend=BACKEND, **options))
        fresh.classify = keep(torch.compile(fresh.classify, backend=BACKEND, **options))
        _MODELS[full_key] = fresh
        return fresh
    cached.load_state_dict(fresh.state_dict())
    cached.train()
    return cached


def _copied_outputs(function):
    """CUDA graphs (reduce-overhead) write every replay's outputs into the same memory, so an output
    kept across calls (the test encodings collected batch by batch) would be overwritten by the next
    batch's: each call's outputs are copied out (autograd follows the copy)."""
    @functools.wraps(function)
    def call(*args, **kwargs):
        return tree_map(lambda value: value.clone() if isinstance(value, torch.Tensor) else value,
                        function(*args, **kwargs))

    return call


def model_key(model_name: str, modality: str, num_classes: int, options: dict, channels_last: bool) -> tuple:
    return model_name, modality, num_classes, json.dumps(options, sort_keys=True), channels_last
