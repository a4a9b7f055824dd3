"""Encoders of the Memory Wrap suite, each available as std, memory (baseline) and encoder_memory."""
from . import densenet, efficientnet, googlenet, mobilenet, resnet, shufflenet, vit  # noqa: F401  (registration)
from .base import MODALITIES, MemoryWrapNet
from .memory import MLP, EncoderMemoryWrapLayer, Identity, MemoryWrapLayer
from .registry import get_model, list_models, register_model

__all__ = [
    "MODALITIES", "MemoryWrapNet", "MLP", "Identity", "MemoryWrapLayer", "EncoderMemoryWrapLayer",
    "get_model", "list_models", "register_model",
]
