"""Settings of the LLM and embedding layer, read from the flat RecBole-style settings dict.

Their defaults are in ``properties/overall.yaml`` only; a settings dict that lacks a key (a
hand-made one in a script or test) falls back to that file (:func:`recbole_llmaug.defaults.setting`).
"""

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from recbole_llmaug.defaults import setting
from recbole_llmaug.errors import UserError

BUNDLED_MINILM = "all-MiniLM-L6-v2"
BUNDLED_MINILM_NAMES = {BUNDLED_MINILM, "sentence-transformers/all-MiniLM-L6-v2"}
DEFAULT_EMBEDDING_MODELS = {
    "sentence-transformers": BUNDLED_MINILM,
    "openai": "text-embedding-3-small",
}


def _number(settings, key, kind, minimum):
    value = setting(settings, key)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise UserError(f"Setting '{key}' must be a number, got {value!r}. Fix it in your yaml or --{key}=...") from None
    if number < minimum:
        raise UserError(f"Setting '{key}' must be at least {minimum}, got {number}. Fix it in your yaml or --{key}=...")
    return number


def _optional_number(settings, key, kind, minimum):
    """``None`` when the setting is ``~`` (its documented automatic value), else a checked number."""
    return None if setting(settings, key) is None else _number(settings, key, kind, minimum)


def _choice(settings, key, choices):
    value = setting(settings, key)
    if value not in choices:
        raise UserError(f"Setting '{key}' must be one of {', '.join(map(repr, choices))}, got {value!r}. "
                        f"Fix it in your yaml or --{key}=...")
    return value


def free_cores() -> int:
    """CPU cores this process may use that other processes are not already using, at least 1.

    The cores we may run on (``os.sched_getaffinity``: a container's or ``taskset``'s limit, not the
    machine's count) minus the one-minute load average, rounded up, so that a 2-core machine with one
    busy neighbour gives 1. llama.cpp and torch threads spin on barriers: a thread on a core that is
    already busy slows every other thread of the same step, so more threads than free cores is slower.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1, min(cores, cores - math.ceil(load - 0.25)))


def resolve_threads(configured: Optional[int]) -> int:
    """``llm_threads`` / ``embedding_threads``: the configured number, or :func:`free_cores` for ``~``."""
    return int(configured) if configured else free_cores()


def cache_dir(settings: Mapping) -> Path:
    """Where chat answers and embeddings are cached; shared by all datasets so work is never repeated."""
    configured = setting(settings, "llmaug_cache_dir")
    if configured:
        return Path(configured).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "recbole_llmaug"


@dataclass(frozen=True)
class LLMSettings:
    """Everything the chat client needs; ``base_url`` None means: start the embedded server."""

    base_url: Optional[str]
    model: Optional[str]
    api_key_env: str
    temperature: float
    top_p: float
    max_tokens: int
    concurrency: int
    timeout: float
    max_retries: int
    retry_failed: bool  # ask again a request recorded as invalid through its correction rounds (ask_until_valid)
    price_per_1k_input: float
    price_per_1k_output: float
    threads: Optional[int]  # None: free cores at server start (resolve_threads)
    parallel: Optional[int]  # None: one slot per concurrent request
    selection_max_tokens: Optional[int]  # None: computed from each selection's answer schema
    selection_format: str  # json | labels
    cache_prompt: bool
    cache_dir: Path

    @classmethod
    def from_settings(cls, settings: Mapping) -> "LLMSettings":
        base_url = setting(settings, "llm_base_url") or os.environ.get("OPENAI_BASE_URL") or None
        return cls(
            base_url=base_url,
            model=setting(settings, "llm_model"),
            api_key_env=str(setting(settings, "llm_api_key_env")),
            temperature=_number(settings, "llm_temperature", float, 0.0),
            top_p=_number(settings, "llm_top_p", float, 0.0),
            max_tokens=_number(settings, "llm_max_tokens", int, 1),
            concurrency=_number(settings, "llm_concurrency", int, 1),
            timeout=_number(settings, "llm_timeout", float, 0.001),
            max_retries=_number(settings, "llm_max_retries", int, 0),
            retry_failed=bool(setting(settings, "llm_retry_failed")),
            price_per_1k_input=_number(settings, "llm_price_per_1k_input", float, 0.0),
            price_per_1k_output=_number(settings, "llm_price_per_1k_output", float, 0.0),
            threads=_optional_number(settings, "llm_threads", int, 1),
            parallel=_optional_number(settings, "llm_parallel", int, 1),
            selection_max_tokens=_optional_number(settings, "llm_selection_max_tokens", int, 1),
            selection_format=_choice(settings, "llm_selection_format", ("json", "labels")),
            cache_prompt=bool(setting(settings, "llm_cache_prompt")),
            cache_dir=cache_dir(settings),
        )

    def fingerprint(self) -> dict:
        """What decides the answers (for an augmentor output's fingerprint): endpoint, model, sampling."""
        return {"base_url": self.base_url, "model": self.model, "temperature": self.temperature, "top_p": self.top_p,
                "max_tokens": self.max_tokens}

    @classmethod
    def fingerprint_of(cls, settings: Mapping) -> dict:
        """:meth:`fingerprint` of the LLM that ``settings`` name (what an augmentor puts in its outputs')."""
        return cls.from_settings(settings).fingerprint()

    @property
    def slots(self) -> int:
        """Parallel slots of the embedded server: ``llm_parallel``, else one per request in flight."""
        return self.parallel or self.concurrency

    def api_key(self) -> Optional[str]:
        """The key from the configured environment variable; never stored, logged or cached."""
        return os.environ.get(self.api_key_env) or None


@dataclass(frozen=True)
class EmbeddingSettings:
    backend: str
    model: str
    batch_size: int
    normalize: bool
    threads: Optional[int]  # torch threads while embedding; None: free cores (resolve_threads)
    cache_dir: Path

    @classmethod
    def from_settings(cls, settings: Mapping) -> "EmbeddingSettings":
        backend = str(setting(settings, "embedding_backend"))
        if backend not in DEFAULT_EMBEDDING_MODELS:
            raise UserError(
                f"Unknown embedding_backend '{backend}'. Use one of {sorted(DEFAULT_EMBEDDING_MODELS)} "
                "(sentence-transformers runs offline with the bundled all-MiniLM-L6-v2)."
            )
        model = str(setting(settings, "embedding_model") or DEFAULT_EMBEDDING_MODELS[backend])
        if backend == "sentence-transformers" and model in BUNDLED_MINILM_NAMES:
            model = BUNDLED_MINILM  # one name for the bundled model: one cache, one fingerprint
        return cls(
            backend=backend,
            model=model,
            batch_size=_number(settings, "embedding_batch_size", int, 1),
            normalize=bool(setting(settings, "embedding_normalize")),
            threads=_optional_number(settings, "embedding_threads", int, 1),
            cache_dir=cache_dir(settings),
        )


def title_max_chars(settings: Mapping) -> int:
    """``llm_title_max_chars``: how long a title may be in any prompt of the LLM stage (0: whole titles).
    Here, not in ``llm.prompts``, so that an augmentor's fingerprint reads it without loading the client."""
    return int(setting(settings, "llm_title_max_chars"))
