"""recbole-llmaug: LLM-based enhancement and data augmentation for long-tail recommendation in RecBole."""

from recbole_llmaug import compat as _compat

_compat.apply()

__version__ = "0.1.0"
