"""The trainer of LLMESRSeR: LLM-ESR's (its teacher cache is marked stale before every epoch)."""

from recbole_llmaug.trainer.llmesr import LLMESRTrainer


class LLMESRSeRTrainer(LLMESRTrainer):
    """``LLMESRTrainer``, found under this model's name."""
