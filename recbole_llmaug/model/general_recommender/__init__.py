"""Our general (non-sequential) recommenders, one model per file."""

from recbole_llmaug.model.general_recommender.llmrec import LLMRec

__all__ = ["LLMRec"]
