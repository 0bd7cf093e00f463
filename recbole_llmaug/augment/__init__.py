"""The augmentor stage: read a dataset's atomic files, call the LLM/embedding layer, write new
atomic files (plus a manifest) next to them.

Augmentors: ``item_emb`` (``.itememb``), ``user_emb`` (``.useremb``), ``sim_users`` (``.simuser``,
needs ``user_emb``), and the group ``llmesr`` (all three).
"""

from recbole_llmaug.augment.runner import AUGMENTORS, GROUPS, ensure_augmented, run_augmentor

__all__ = ["AUGMENTORS", "GROUPS", "ensure_augmented", "run_augmentor"]
