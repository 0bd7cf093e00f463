"""The augmentor stage: read a dataset's atomic files, call the LLM/embedding layer, write new
atomic files (plus a manifest) next to them or under ``augment_path``.

Every output is declared once (:mod:`recbole_llmaug.augment.outputs`): shared text embeddings in
:mod:`.text_embeddings` (``item_emb`` -> ``.itememb``, ``user_emb`` -> ``.useremb``, ``sim_users`` ->
``.simuser``), and one module per system in :mod:`.systems` (``llmesr``: all three).

The runner (and with it the LLM layer and ``openai``) is imported on first use, so that datasets can
load atomic files without the LLM layer installed.
"""

import importlib

__all__ = ["ensure_augmented", "run_augmentor"]


def __getattr__(name):
    if name in __all__:
        return getattr(importlib.import_module("recbole_llmaug.augment.runner"), name)
    raise AttributeError(f"module 'recbole_llmaug.augment' has no attribute '{name}'")
