"""The augmentor stage: read a dataset's atomic files, call the LLM/embedding layer, write new
atomic files (plus a manifest) next to them.

Augmentors: ``item_emb`` (``.itememb``), ``user_emb`` (``.useremb``), ``sim_users`` (``.simuser``,
needs ``user_emb``), and the group ``llmesr`` (all three).

The runner (and with it the LLM layer and ``openai``) is imported on first use, so that models can
read atomic files through ``recbole_llmaug.augment.atomic`` without the LLM layer installed.
"""

import importlib

__all__ = ["AUGMENTORS", "GROUPS", "ensure_augmented", "run_augmentor"]


def __getattr__(name):
    if name in __all__:
        return getattr(importlib.import_module("recbole_llmaug.augment.runner"), name)
    raise AttributeError(f"module 'recbole_llmaug.augment' has no attribute '{name}'")
