"""Our sequential recommenders, one model per file (class name = file name, lower-cased)."""

from recbole_llmaug.model.sequential_recommender.llmesr import LLMESR
from recbole_llmaug.model.sequential_recommender.llmesrser import LLMESRSeR
from recbole_llmaug.model.sequential_recommender.llmser import LLMSeR

__all__ = ["LLMESR", "LLMESRSeR", "LLMSeR"]
