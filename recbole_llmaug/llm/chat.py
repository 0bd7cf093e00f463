"""Chat completions against any OpenAI-compatible endpoint, with retries, a cache and cost accounting.

The endpoint is OpenAI, vLLM, Ollama, llama.cpp, or (when nothing is configured) the embedded
llama.cpp server from :mod:`recbole_llmaug.llm.local_server`. Transport problems (rate limits,
5xx, timeouts, dropped connections) are retried with exponential backoff; every answer is stored
in a persistent cache before it is returned, so reruns and resumed runs never pay twice.
"""

import contextlib
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Optional

import openai

from recbole_llmaug.errors import UserError
from recbole_llmaug.llm.cache import SqliteCache, stable_hash
from recbole_llmaug.llm.local_server import LocalLlamaServer, resolve_gguf
from recbole_llmaug.llm.settings import LLMSettings

logger = logging.getLogger(__name__)

CHAT_CACHE_FILE = "chat.sqlite"
LOCAL_API_KEY = "local-server-needs-no-key"
RETRYABLE_ERRORS = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)


def redact(text: str, secret: Optional[str]) -> str:
    """Error texts may echo request details; make sure the key is never among them."""
    return text.replace(secret, "***") if secret else text


class LLMCallError(Exception):
    """A call that still failed after all retries; the caller records it and carries on."""


@dataclass
class ChatAnswer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool


@dataclass
class CallStats:
    """Counters shown in progress bars and written to manifests; safe to update from threads."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **increments) -> None:
        with self._lock:
            for name, amount in increments.items():
                setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict:
        with self._lock:
            return {
                "calls": self.calls, "cache_hits": self.cache_hits, "retries": self.retries,
                "failures": self.failures, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "cost": round(self.cost, 6),
            }

    def postfix(self) -> dict:
        """Short labels for a tqdm bar."""
        stats = self.as_dict()
        return {
            "calls": stats["calls"], "hits": stats["cache_hits"], "fail": stats["failures"],
            "tok": stats["prompt_tokens"] + stats["completion_tokens"], "cost": f"${stats['cost']:.4f}",
        }


class ChatClient:
    """One model on one endpoint; ``complete`` is thread-safe."""

    def __init__(self, llm: LLMSettings, base_url: str, model: str, api_key: Optional[str],
                 cache: Optional[SqliteCache] = None, backoff_base: float = 1.0, backoff_cap: float = 60.0):
        self.settings = llm
        self.base_url = base_url
        self.model = model
        self.cache = cache
        self.stats = CallStats()
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.schema_supported = True
        self._secret = api_key
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "no-key-configured", timeout=llm.timeout, max_retries=0
        )

    def sampling(self) -> dict:
        return {
            "temperature": self.settings.temperature,
            "top_p": self.settings.top_p,
            "max_tokens": self.settings.max_tokens,
        }

    def cache_key(self, messages, prompt_version: str, response_format) -> str:
        """Model, messages, sampling, answer format and prompt version; never the endpoint's key."""
        return stable_hash({
            "model": self.model, "messages": messages, "sampling": self.sampling(),
            "response_format": response_format, "prompt_version": prompt_version,
        })

    def complete(self, messages: list, prompt_version: str, response_format: Optional[dict] = None) -> ChatAnswer:
        """The answer for ``messages``, from the cache if this exact request was answered before."""
        if response_format is not None and not self.schema_supported:
            response_format = None
        key = self.cache_key(messages, prompt_version, response_format)
        if self.cache is not None:
            stored = self.cache.get(key)
            if stored is not None:
                self.stats.add(cache_hits=1)
                record = json.loads(stored)
                return ChatAnswer(record["text"], record["prompt_tokens"], record["completion_tokens"], cached=True)
        try:
            answer = self._call_with_retries(messages, response_format)
        except openai.BadRequestError as error:
            if response_format is None:
                raise LLMCallError(redact(f"HTTP 400: {error}", self._secret)) from None
            if self.schema_supported:
                logger.warning("%s rejected response_format; continuing without schemas (tolerant parsing "
                               "and validation)", self.base_url)
                self.schema_supported = False
            return self.complete(messages, prompt_version, None)  # looks up the schema-less answer first
        if self.cache is not None:
            self.cache.put(key, json.dumps({
                "text": answer.text, "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
            }).encode("utf-8"))
        return answer

    def _call_with_retries(self, messages, response_format) -> ChatAnswer:
        request = dict(model=self.model, messages=messages, **self.sampling())
        if response_format is not None:
            request["response_format"] = response_format
        response = call_with_retries(
            lambda: self._client.chat.completions.create(**request), self.settings, self.base_url, self.model,
            self.stats, self.backoff_base, self.backoff_cap, self._secret,
        )
        return self._answer(response)

    def _answer(self, response) -> ChatAnswer:
        text = ""
        if response.choices:
            text = response.choices[0].message.content or ""
        usage = response.usage
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        cost = (prompt_tokens * self.settings.price_per_1k_input
                + completion_tokens * self.settings.price_per_1k_output) / 1000.0
        self.stats.add(calls=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost=cost)
        return ChatAnswer(text, prompt_tokens, completion_tokens, cached=False)


def backoff_delay(attempt: int, error, base: float, cap: float) -> float:
    """The server's Retry-After when it sends one, else jittered exponential backoff."""
    response = getattr(error, "response", None)
    retry_after = response.headers.get("retry-after") if response is not None else None
    try:
        if retry_after is not None:
            return min(float(retry_after), cap)
    except ValueError:
        pass
    return min(cap, base * 2 ** attempt) * random.uniform(0.5, 1.0)


def call_with_retries(call, llm: LLMSettings, base_url: str, model: str, stats: "CallStats",
                      backoff_base: float, backoff_cap: float, secret: Optional[str]):
    """``call()`` retried on rate limits, 5xx, timeouts and dropped connections.

    Exhausted retries and other HTTP errors become :class:`LLMCallError` (one request failed);
    a refused key or an unknown model become :class:`UserError` (every request would fail).
    A 400 is re-raised as is, so the caller can drop an unsupported ``response_format``.
    """
    attempts = llm.max_retries + 1
    for attempt in range(attempts):
        try:
            return call()
        except RETRYABLE_ERRORS as error:
            if attempt + 1 == attempts:
                raise LLMCallError(redact(f"{type(error).__name__} after {attempts} attempt(s): {error}", secret)) from None
            stats.add(retries=1)
            delay = backoff_delay(attempt, error, backoff_base, backoff_cap)
            logger.debug("retrying in %.2fs after %s", delay, type(error).__name__)
            time.sleep(delay)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
            raise UserError(
                f"The LLM endpoint {base_url} refused the API key (HTTP {error.status_code}). "
                f"Put a valid key in the environment variable {llm.api_key_env} "
                "(or name another variable with llm_api_key_env)."
            ) from None
        except openai.NotFoundError:
            raise UserError(
                f"The endpoint {base_url} does not know the model '{model}' (HTTP 404). "
                "Set the model name to one the server lists under /v1/models, and check llm_base_url."
            ) from None
        except openai.BadRequestError:
            raise
        except openai.APIStatusError as error:
            raise LLMCallError(redact(f"HTTP {error.status_code}: {error}", secret)) from None
    raise AssertionError("unreachable")


@contextlib.contextmanager
def open_chat_client(settings: Mapping, backoff_base: float = 1.0) -> Iterator[ChatClient]:
    """A :class:`ChatClient` for the configured endpoint, or for the embedded server started here.

    The embedded server is stopped when the ``with`` block ends.
    """
    llm = LLMSettings.from_settings(settings)
    cache = SqliteCache(llm.cache_dir / CHAT_CACHE_FILE, "chat")
    try:
        if llm.base_url:
            if not llm.model:
                raise UserError(
                    f"llm_base_url is set to {llm.base_url} but llm_model is empty. Set llm_model to the "
                    "model name the server serves (see its /v1/models)."
                )
            yield ChatClient(llm, llm.base_url, llm.model, llm.api_key(), cache, backoff_base=backoff_base)
            return
        gguf = resolve_gguf(llm.model)
        llm.cache_dir.mkdir(parents=True, exist_ok=True)
        with LocalLlamaServer(gguf, threads=llm.threads, parallel=min(llm.concurrency, 4),
                              log_file=llm.cache_dir / "local_server.log") as server:
            yield ChatClient(llm, server.base_url, server.model_name, LOCAL_API_KEY, cache, backoff_base=backoff_base)
    finally:
        cache.close()
