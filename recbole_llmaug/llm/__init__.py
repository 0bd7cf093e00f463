"""The LLM and embedding layer shared by every seed system (LLM-ESR, LLMSeR, LLMRec).

- :func:`open_chat_client`: a chat client for the configured OpenAI-compatible endpoint, or for
  the embedded llama.cpp server (bundled SmolLM2) when none is configured.
- :func:`select` / :func:`run_many`: schema-constrained "pick k of these ids" tasks, validated,
  retried, cached, with a progress bar.
- :func:`embed_texts`: cached, batched text embeddings (bundled all-MiniLM-L6-v2 by default).
- :func:`generate_json` / :func:`run_many_json`: generated JSON objects under a per-task schema,
  validated field by field (LLMRec's profiles and attributes).
- :func:`open_picker`: "choose k of these candidates for this user" by the LLM, by embedding cosine
  (no LLM) or at random, behind one interface (``picker`` setting).

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
    "EmbeddingSettings": "settings", "LLMSettings": "settings", "free_cores": "settings",
    "resolve_threads": "settings",
    "JsonRequest": "structured", "JsonResult": "structured", "generate_json": "structured",
    "run_many_json": "structured",
    "PickTask": "pickers", "PickResult": "pickers", "open_picker": "pickers", "EmbeddingPicker": "pickers",
    "LLMPicker": "pickers", "RandomPicker": "pickers",
    "selection_request": "prompts", "compact_title": "prompts", "candidate_labels": "prompts",
}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"recbole_llmaug.llm.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'recbole_llmaug.llm' has no attribute '{name}'")
