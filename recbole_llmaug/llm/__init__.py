"""The LLM and embedding layer shared by every seed system (LLM-ESR, LLMSeR, LLMRec).

- :func:`open_chat_client`: a chat client for the configured OpenAI-compatible endpoint, or for
  the embedded llama.cpp server (bundled SmolLM2) when none is configured.
- :func:`select` / :func:`run_many`: schema-constrained "pick k of these ids" tasks, validated,
  retried, cached, with a progress bar.
- :func:`embed_texts`: cached, batched text embeddings (bundled all-MiniLM-L6-v2 by default).

Submodules are imported on first use, so that reading :mod:`.settings` does not import ``openai``
or ``sentence-transformers``.
"""

import importlib

_WHERE = {
    "CallStats": "chat", "ChatAnswer": "chat", "ChatClient": "chat", "LLMCallError": "chat",
    "open_chat_client": "chat",
    "EmbeddingRun": "embeddings", "embed_texts": "embeddings", "make_embedder": "embeddings",
    "SelectionRequest": "selection", "SelectionResult": "selection", "parse_selection": "selection",
    "run_many": "selection", "select": "selection", "selection_schema": "selection",
    "EmbeddingSettings": "settings", "LLMSettings": "settings",
}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"recbole_llmaug.llm.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'recbole_llmaug.llm' has no attribute '{name}'")
