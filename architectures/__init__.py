"""Encoders of the Memory Wrap suite, each available with every registered head (modality).

Every module of this package is imported here, so that an encoder or a head registers itself
where it is defined: adding one is adding one file.
"""
import importlib as _importlib
import pkgutil as _pkgutil

for _module in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_module.name}")

from .base import (  # noqa: E402 - the package's interface, after every plug-in registered itself
    MemoryWrapNet, PAPER_MODALITIES, model_display_name, get_head_class, get_model, get_model_factory,
    list_modalities, list_models, modality_display_name, register_head, register_model,
)
from .memory import MLP, EncoderMemoryWrapLayer, MemoryWrapLayer  # noqa: E402

MODALITIES = tuple(list_modalities())

__all__ = [
    "MODALITIES", "PAPER_MODALITIES", "MemoryWrapNet", "MLP", "MemoryWrapLayer", "EncoderMemoryWrapLayer",
    "model_display_name", "get_head_class", "get_model", "get_model_factory", "list_modalities", "list_models",
    "modality_display_name",
    "register_head", "register_model",
]
