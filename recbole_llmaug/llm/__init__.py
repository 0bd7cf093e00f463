"""The LLM and embedding layer shared by every seed system (LLM-ESR, LLMSeR, LLMRec).

- :func:`open_chat_client`: a chat client for the configured OpenAI-compatible endpoint, or for
  the embedded llama.cpp server (bundled SmolLM2) when none is configured.
- :func:`select` / :func:`run_many`: schema-constrained "pick k of these ids" tasks, validated,
  retried, cached, with a progress bar.
- :func:`embed_texts`: cached, batched text embeddings (bundled all-MiniLM-L6-v2 by default).
"""

from recbole_llmaug.llm.chat import CallStats, ChatAnswer, ChatClient, LLMCallError, open_chat_client
from recbole_llmaug.llm.embeddings import EmbeddingRun, embed_texts, make_embedder
from recbole_llmaug.llm.selection import (
    SelectionRequest,
    SelectionResult,
    parse_selection,
    run_many,
    select,
    selection_schema,
)
from recbole_llmaug.llm.settings import DEFAULTS, EmbeddingSettings, LLMSettings

__all__ = [
    "CallStats", "ChatAnswer", "ChatClient", "LLMCallError", "open_chat_client",
    "EmbeddingRun", "embed_texts", "make_embedder",
    "SelectionRequest", "SelectionResult", "parse_selection", "run_many", "select", "selection_schema",
    "DEFAULTS", "EmbeddingSettings", "LLMSettings",
]
