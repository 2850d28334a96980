"""spikebench: spiking and mobile vision backbones, and how they are measured."""

from bench.registry import create_model, list_models, model_entry, register_model

__all__ = ["create_model", "list_models", "model_entry", "register_model"]
__version__ = "0.1.0"
