"""Chat completions against any OpenAI-compatible endpoint, with retries, a cache and cost accounting.

The endpoint is OpenAI, vLLM, Ollama, llama.cpp, or (when nothing is configured) the embedded
llama.cpp server from :mod:`recbole_llmaug.llm.local_server`. Transport problems (rate limits,
5xx, timeouts, dropped connections, an HTTP 200 whose body is not the expected JSON) are retried
with exponential backoff; every acceptable answer is stored in a persistent cache before it is
returned, so reruns and resumed runs never pay twice. A rejected answer (empty, or one the caller
finds invalid) is never stored: a rerun asks again instead of replaying the failure.
"""

import contextlib
import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Optional

import openai

from recbole_llmaug.errors import UserError
from recbole_llmaug.llm.cache import SqliteCache, stable_hash
from recbole_llmaug.llm.local_server import LocalLlamaServer, resolve_gguf
from recbole_llmaug.llm.settings import LLMSettings, resolve_threads

logger = logging.getLogger(__name__)

CHAT_CACHE_FILE = "chat.sqlite"
LOCAL_API_KEY = "local-server-needs-no-key"
MAX_DETAIL_CHARS = 300  # of a server's error text quoted in a message
GRAMMAR_FORMAT = "llama_grammar"  # a response_format of ours: a GBNF grammar, sent as llama.cpp's "grammar" field


class MalformedResponse(Exception):
    """An HTTP 200 whose body is not the answer asked for: not JSON, the wrong shape, no choices, or
    (embeddings) vectors that do not match the inputs. Retried like a 5xx, because a server that
    sent a broken body once may send a good one next time; never cached."""

    def __init__(self, problem: str, response=None):
        super().__init__(problem)
        self.response = response  # the HTTP response, so that backoff honours its Retry-After


RETRYABLE_ERRORS = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                    openai.APIConnectionError, MalformedResponse)


def redact(text: str, secret: Optional[str]) -> str:
    """Error texts may echo request details; make sure the key is never among them."""
    return text.replace(secret, "***") if secret else text


def one_line(text: str, secret: Optional[str], limit: int = MAX_DETAIL_CHARS) -> str:
    """``text`` redacted (before it is cut, so no prefix of the key survives), on one line, at most ``limit`` chars."""
    text = " ".join(redact(str(text), secret).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class LLMCallError(Exception):
    """A call that still failed after all retries; the caller records it and carries on.

    The message names the problem (HTTP status, timeout, dropped connection, malformed body) on one
    line, with the key redacted.
    """


def parsed_body(raw):
    """The SDK object of a raw HTTP 200 response, or :class:`MalformedResponse` when its body cannot be read.

    The SDK raises whatever its JSON decoder or post-parser raises (``JSONDecodeError``, ``ValueError``,
    ``TypeError``...) on a broken body; all of them mean the same thing here.
    """
    try:
        return raw.parse()
    except Exception as error:  # noqa: BLE001 - any failure to read the body is a malformed answer
        raise MalformedResponse(f"HTTP {raw.status_code} with a body that is not the expected JSON "
                                f"({type(error).__name__}: {error})", raw.http_response) from None


def describe_error(error, timeout: float, secret: Optional[str]) -> str:
    """What went wrong, in words a user can act on (HTTP status, timeout, dropped connection, bad body),
    on one line; what the server said is quoted shortened and with the key redacted."""
    if isinstance(error, MalformedResponse):
        return one_line(error, secret)
    if isinstance(error, openai.APITimeoutError):
        return f"no answer within llm_timeout={timeout:g}s (APITimeoutError)"
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error.__context__
        detail = f": {type(cause).__name__}: {one_line(cause, secret)}" if cause is not None else ""
        return f"connection failed or dropped (APIConnectionError{detail})"
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code} ({type(error).__name__}: {one_line(error.message, secret)})"
    return f"{type(error).__name__}: {one_line(error, secret)}"


def token_count(usage, name: str) -> int:
    """A token count from a response's ``usage`` (0 when absent or not a number: it only feeds the cost estimate)."""
    try:
        return max(int(getattr(usage, name, 0) or 0), 0)
    except (TypeError, ValueError):
        return 0


def _non_empty(text: str) -> bool:
    return bool(text.strip())


@dataclass
class ChatAnswer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool


@dataclass
class CallStats:
    """Counters shown in progress bars and written to manifests; safe to update from threads.

    ``prompt_tokens`` and ``completion_tokens`` count the calls made now; ``cached_prompt_tokens`` and
    ``cached_completion_tokens`` count the answers reused from the cache, as they were counted when paid
    for, so that a pass resumed across runs still states what it costs from an empty cache."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
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
                "cached_prompt_tokens": self.cached_prompt_tokens,
                "cached_completion_tokens": self.cached_completion_tokens,
            }

    def postfix(self, elapsed: Optional[float] = None, since: Optional[dict] = None) -> dict:
        """Short labels for a tqdm bar: model calls (and calls/s over ``elapsed`` seconds), cache hits,
        failures, tokens and cost; counted from the snapshot ``since`` (an earlier :meth:`as_dict`) when given,
        so a bar shows its own work even when the client served earlier bars."""
        stats = self.as_dict()
        if since:
            stats = {name: value - since.get(name, 0) for name, value in stats.items()}
        labels = {"calls": stats["calls"]}
        if elapsed:
            labels["calls/s"] = f"{stats['calls'] / elapsed:.2f}"
        labels.update({
            "hits": stats["cache_hits"], "fail": stats["failures"],
            "tok": stats["prompt_tokens"] + stats["completion_tokens"], "cost": f"${stats['cost']:.4f}",
        })
        return labels


def bar_postfix(bar, stats: "CallStats", since: Optional[dict] = None) -> dict:
    """:meth:`CallStats.postfix` over the time a tqdm ``bar`` has run."""
    return stats.postfix(elapsed=bar.format_dict.get("elapsed") or None, since=since)


class ChatClient:
    """One model on one endpoint; ``complete`` is thread-safe."""

    def __init__(self, llm: LLMSettings, base_url: str, model: str, api_key: Optional[str],
                 cache: Optional[SqliteCache] = None, backoff_base: float = 1.0, backoff_cap: float = 60.0,
                 llama_cpp: bool = False, failures: Optional[SqliteCache] = None):
        self.settings = llm
        # requests that found no valid answer (ask_until_valid), apart from the answers: ``cache`` holds valid ones only
        self.failures = failures
        # llama.cpp's server (the embedded one) takes fields other servers may refuse: cache_prompt, grammar.
        self.llama_cpp = llama_cpp
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

    def sampling(self, max_tokens: Optional[int] = None) -> dict:
        """Sampling of one request; ``max_tokens`` bounds this answer (e.g. from its schema), at most ``llm_max_tokens``."""
        limit = self.settings.max_tokens if max_tokens is None else min(max_tokens, self.settings.max_tokens)
        return {"temperature": self.settings.temperature, "top_p": self.settings.top_p, "max_tokens": limit}

    def cache_key(self, messages, prompt_version: str, response_format, max_tokens: Optional[int] = None) -> str:
        """Model, messages, sampling, answer format and prompt version; never the endpoint's key."""
        return stable_hash({
            "model": self.model, "messages": messages, "sampling": self.sampling(max_tokens),
            "response_format": response_format, "prompt_version": prompt_version,
        })

    def _effective_format(self, response_format):
        if response_format is not None and response_format.get("type") == GRAMMAR_FORMAT and not self.llama_cpp:
            raise ValueError("a llama.cpp grammar can only be sent to a llama.cpp server (ChatClient(llama_cpp=True))")
        return response_format if self.schema_supported else None

    def complete(self, messages: list, prompt_version: str, response_format: Optional[dict] = None,
                 accept: Optional[Callable[[str], bool]] = None, max_tokens: Optional[int] = None) -> ChatAnswer:
        """The answer for ``messages``, from the cache if this exact request was answered acceptably before.

        ``accept(text)`` says whether an answer is worth keeping (default: any non-empty text). Only an
        accepted answer is cached, and a cached answer that is not accepted (left by an older version)
        is asked again and replaced, so an invalid answer is never replayed as an answer (a request that
        stays invalid through its correction rounds is recorded apart: :func:`ask_until_valid`). A rejected answer is
        still returned, for the caller to retry or record. ``response_format`` is OpenAI's (``json_schema``)
        or, for a llama.cpp server only, ``{"type": "llama_grammar", "grammar": GBNF}``. ``max_tokens``
        bounds this answer below ``llm_max_tokens`` (it is part of the cache key).
        """
        accept = accept or _non_empty
        response_format = self._effective_format(response_format)
        key = self.cache_key(messages, prompt_version, response_format, max_tokens)
        if self.cache is not None:
            stored = self.cache.get(key)
            if stored is not None:
                record = json.loads(stored)
                if accept(record["text"]):
                    self.stats.add(cache_hits=1, cached_prompt_tokens=record["prompt_tokens"],
                                   cached_completion_tokens=record["completion_tokens"])
                    return ChatAnswer(record["text"], record["prompt_tokens"], record["completion_tokens"], cached=True)
        try:
            answer = self._call_with_retries(messages, response_format, max_tokens)
        except openai.BadRequestError as error:
            if response_format is None:
                raise LLMCallError(describe_error(error, self.settings.timeout, self._secret)) from None
            if self.schema_supported:
                logger.warning("%s rejected response_format; continuing without schemas (tolerant parsing "
                               "and validation)", self.base_url)
                self.schema_supported = False
            return self.complete(messages, prompt_version, None, accept, max_tokens)  # the schema-less answer first
        if accept(answer.text):
            self._store(key, answer)
        return answer

    def remember(self, messages: list, prompt_version: str, response_format: Optional[dict],
                 answer: ChatAnswer, max_tokens: Optional[int] = None) -> None:
        """Cache ``answer`` as the resolution of the request ``messages``.

        :func:`~recbole_llmaug.llm.selection.select` uses it when a correction round produced the
        valid answer: the first request's own (invalid) answer is not cached, so without this a rerun
        would pay for that request again before reaching the cached correction.
        """
        key = self.cache_key(messages, prompt_version, self._effective_format(response_format), max_tokens)
        self._store(key, answer)

    def _failure_key(self, messages: list, prompt_version: str, response_format, max_tokens, rounds: int) -> str:
        """The request's cache key and how many correction rounds it was given: more rounds ask again."""
        key = self.cache_key(messages, prompt_version, self._effective_format(response_format), max_tokens)
        return f"{key}/rounds={rounds}"

    def recorded_failure(self, messages: list, prompt_version: str, response_format, max_tokens,
                         rounds: int) -> Optional[dict]:
        """What an earlier run recorded when this request stayed invalid through ``rounds`` correction
        rounds (``error``, last ``raw`` answer, ``attempts``, tokens), or None."""
        if self.failures is None:
            return None
        stored = self.failures.get(self._failure_key(messages, prompt_version, response_format, max_tokens, rounds))
        return None if stored is None else json.loads(stored)

    def record_failure(self, messages: list, prompt_version: str, response_format, max_tokens, rounds: int,
                       failure: dict) -> None:
        if self.failures is not None:
            self.failures.put(self._failure_key(messages, prompt_version, response_format, max_tokens, rounds),
                              json.dumps(failure).encode("utf-8"))

    def forget_failure(self, messages: list, prompt_version: str, response_format, max_tokens, rounds: int) -> None:
        """Drop the record of a request that has found a valid answer since (asked again: ``llm_retry_failed``)."""
        if self.failures is not None:
            self.failures.delete(self._failure_key(messages, prompt_version, response_format, max_tokens, rounds))

    def _store(self, key: str, answer: ChatAnswer) -> None:
        if self.cache is not None:
            self.cache.put(key, json.dumps({
                "text": answer.text, "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
            }).encode("utf-8"))

    def _call_with_retries(self, messages, response_format, max_tokens=None) -> ChatAnswer:
        request = dict(model=self.model, messages=messages, **self.sampling(max_tokens))
        extra = {}
        if self.llama_cpp:
            extra["cache_prompt"] = self.settings.cache_prompt
        if response_format is not None and response_format.get("type") == GRAMMAR_FORMAT:
            extra["grammar"] = response_format["grammar"]
        elif response_format is not None:
            request["response_format"] = response_format
        if extra:
            request["extra_body"] = extra
        return call_with_retries(
            lambda: self._client.chat.completions.with_raw_response.create(**request), self.settings,
            self.base_url, self.model, self.stats, self.backoff_base, self.backoff_cap, self._secret,
            parse=self._answer,
        )

    def _answer(self, raw) -> ChatAnswer:
        """The answer in a raw HTTP 200, or :class:`MalformedResponse` (retried) when it holds none.

        No ``choices`` is malformed; a choice with empty or null content is an (empty) answer, which
        the caller judges and :meth:`complete` does not cache.
        """
        response = parsed_body(raw)
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise MalformedResponse(f"HTTP {raw.status_code} with no choices in the chat answer", raw.http_response)
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None)
        if text is not None and not isinstance(text, str):
            raise MalformedResponse(f"HTTP {raw.status_code} whose message content is a "
                                    f"{type(text).__name__}, not text", raw.http_response)
        text = text or ""
        usage = getattr(response, "usage", None)
        prompt_tokens = token_count(usage, "prompt_tokens")
        completion_tokens = token_count(usage, "completion_tokens")
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
                      backoff_base: float, backoff_cap: float, secret: Optional[str], parse=None):
    """``parse(call())`` retried on rate limits, 5xx, timeouts, dropped connections and malformed bodies.

    ``parse`` turns the HTTP answer into the result and raises :class:`MalformedResponse` when the
    body is not what was asked for (so that is retried like a 5xx, and nothing from it is kept).
    Exhausted retries and other HTTP errors become :class:`LLMCallError` (one request failed);
    a refused key or an unknown model become :class:`UserError` (every request would fail).
    A 400 is re-raised as is, so the caller can drop an unsupported ``response_format``.
    """
    attempts = llm.max_retries + 1
    for attempt in range(attempts):
        try:
            response = call()
            return response if parse is None else parse(response)
        except RETRYABLE_ERRORS as error:
            if attempt + 1 == attempts:
                problem = describe_error(error, llm.timeout, secret)
                raise LLMCallError(f"{problem}, after {attempts} attempt(s)") from None
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
            raise LLMCallError(describe_error(error, llm.timeout, secret)) from None
    raise AssertionError("unreachable")


@contextlib.contextmanager
def open_chat_client(settings: Mapping, backoff_base: float = 1.0) -> Iterator[ChatClient]:
    """A :class:`ChatClient` for the configured endpoint, or for the embedded server started here.

    The embedded server is stopped when the ``with`` block ends.
    """
    llm = LLMSettings.from_settings(settings)
    cache = SqliteCache(llm.cache_dir / CHAT_CACHE_FILE, "chat")
    failures = SqliteCache(llm.cache_dir / CHAT_CACHE_FILE, "failures")
    try:
        if llm.base_url:
            if not llm.model:
                raise UserError(
                    f"llm_base_url is set to {llm.base_url} but llm_model is empty. Set llm_model to the "
                    "model name the server serves (see its /v1/models)."
                )
            yield ChatClient(llm, llm.base_url, llm.model, llm.api_key(), cache, backoff_base=backoff_base,
                             failures=failures)
            return
        gguf = resolve_gguf(llm.model)
        llm.cache_dir.mkdir(parents=True, exist_ok=True)
        with LocalLlamaServer(gguf, threads=resolve_threads(llm.threads), parallel=llm.slots,
                              log_file=llm.cache_dir / "local_server.log") as server:
            yield ChatClient(llm, server.base_url, server.model_name, LOCAL_API_KEY, cache, backoff_base=backoff_base,
                             llama_cpp=True, failures=failures)
    finally:
        cache.close()
        failures.close()


def ask_until_valid(client: ChatClient, messages: list, version: str, response_format, instruction: str,
                    problem: Callable[[str], Optional[str]], bound: Optional[int], max_invalid_retries: int,
                    result) -> Optional[ChatAnswer]:
    """The correction rounds every structured request shares; the valid answer, or None.

    ``messages`` end with ``instruction`` (how to answer). ``problem(text)`` says why an answer is not
    acceptable (None: it is). An invalid answer is sent back with its problem and ``instruction`` again,
    at most ``max_invalid_retries`` times; the first attempt's answer is bounded by ``bound`` tokens, a
    correction round by ``llm_max_tokens`` (the bound may have cut a valid answer short). A valid answer
    found in a correction round is also cached under the first request, so that a rerun finds it at once.
    ``result`` (a selection or JSON result) accumulates ``attempts``, ``raw``, ``cached``, the tokens and
    ``error`` (``invalid answer: ..``, a transport fault, None when valid). A request without a valid
    answer counts as one failure in ``client.stats``.

    A request that stays invalid through every round is recorded (apart from the answers, which hold
    valid ones only), and a rerun with the same rounds replays that failure without a call, its attempts
    and tokens counted as cached: a resumed pass does not pay again for the failures before the
    interruption (at temperature 0 the same rounds would come back). ``llm_retry_failed: True`` asks such
    requests again (an endpoint that does not answer deterministically, a fixed server). A transport
    fault is never recorded.
    """
    if not client.settings.retry_failed:
        failed = client.recorded_failure(messages, version, response_format, bound, max_invalid_retries)
        if failed is not None:
            result.attempts += failed["attempts"]
            result.raw, result.error = failed["raw"], failed["error"]
            result.prompt_tokens += failed["prompt_tokens"]
            result.completion_tokens += failed["completion_tokens"]
            client.stats.add(failures=1, cache_hits=failed["attempts"], cached_prompt_tokens=failed["prompt_tokens"],
                             cached_completion_tokens=failed["completion_tokens"])
            return None
    conversation = list(messages)
    transport_fault = False
    for _ in range(max_invalid_retries + 1):
        result.attempts += 1
        try:
            answer = client.complete(conversation, version, response_format, lambda text: problem(text) is None,
                                     max_tokens=bound if result.attempts == 1 else None)
        except LLMCallError as error:
            result.error, result.cached, transport_fault = str(error), False, True
            break
        result.raw = answer.text
        result.cached = result.cached and answer.cached
        result.prompt_tokens += answer.prompt_tokens
        result.completion_tokens += answer.completion_tokens
        issue = problem(answer.text)
        if issue is not None:
            result.error = f"invalid answer: {issue}"
            conversation = conversation + [
                {"role": "assistant", "content": answer.text},
                {"role": "user", "content": f"That answer is invalid: {issue}. {instruction}"},
            ]
            continue
        result.error = None
        if result.attempts > 1:
            client.remember(list(messages), version, response_format, answer, max_tokens=bound)
        if client.settings.retry_failed:  # a failure recorded before would otherwise shadow this answer
            client.forget_failure(messages, version, response_format, bound, max_invalid_retries)
        return answer
    if not transport_fault:
        client.record_failure(messages, version, response_format, bound, max_invalid_retries, {
            "error": result.error, "raw": result.raw, "attempts": result.attempts,
            "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens})
    client.stats.add(failures=1)
    return None
