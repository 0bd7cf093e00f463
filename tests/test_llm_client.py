"""Error paths of the chat layer against a fake OpenAI-compatible server on loopback.

``FakeOpenAIServer`` (tests/fake_openai.py) is a scripted stand-in (not a model): each test queues
the HTTP answers it wants (429, 500, a slow answer, malformed JSON, an id outside the candidates, a
400 for ``response_format``) and then checks what the client did with them.
"""

import json
import logging
import multiprocessing
import sqlite3
import threading

import numpy as np
import pytest

from recbole_llmaug.errors import UserError
from recbole_llmaug.llm import (
    ChatClient,
    EmbeddingSettings,
    LLMSettings,
    SelectionRequest,
    open_chat_client,
    parse_selection,
    run_many,
    embed_texts,
    select,
    selection_schema,
)
from recbole_llmaug.llm.cache import SqliteCache
from recbole_llmaug.llm.chat import CHAT_CACHE_FILE
from recbole_llmaug.llm.selection import InvalidAnswer

from conftest import fake_llm_settings
from fake_openai import chat_body, error_body

SECRET = "sk-test-do-not-leak-0123456789"
CANDIDATES = ["A1", "B2", "C3"]
MESSAGES = [{"role": "user", "content": "Which item next?"}]


@pytest.fixture
def settings(tmp_path, fake_server, monkeypatch):
    return fake_llm_settings(fake_server, tmp_path, monkeypatch, key=SECRET, no_backoff=False, llm_timeout=0.5,
                             llm_max_retries=3, llm_price_per_1k_input=1.0, llm_price_per_1k_output=2.0)


def fast_client(settings):
    """The real client, with millisecond backoff so that retry tests stay fast."""
    return open_chat_client(settings, backoff_base=0.01)


# ------------------------------------------------------------------ retries

def test_rate_limit_and_server_errors_are_retried(fake_server, settings):
    fake_server.queue(429, error_body("slow down", "rate_limit"), {"Retry-After": "0"})
    fake_server.queue(500, error_body("boom"))
    fake_server.queue(503, "<html>unavailable</html>")
    with fast_client(settings) as client:
        result = select(client, MESSAGES, CANDIDATES, 1, "test-v1")
        stats = client.stats.as_dict()
    assert result.valid and result.ids == ["B2"]
    assert len(fake_server.requests) == 4
    assert stats["retries"] == 3 and stats["calls"] == 1 and stats["failures"] == 0
    assert stats["prompt_tokens"] == 10 and stats["cost"] == pytest.approx(10 / 1000 * 1.0 + 5 / 1000 * 2.0)


def test_timeout_is_retried_then_recorded_as_failure(fake_server, settings):
    fake_server.queue(200, chat_body('{"ids": ["A1"]}'), delay=2.0)
    with fast_client(settings) as client:
        assert select(client, MESSAGES, CANDIDATES, 1, "test-v1").ids == ["B2"]
        assert client.stats.retries == 1

    fake_server.default = (200, chat_body('{"ids": ["A1"]}'), {}, 2.0)
    with fast_client(dict(settings, llm_max_retries=1)) as client:
        result = select(client, MESSAGES, CANDIDATES, 1, "test-v2")
        assert not result.valid and "APITimeoutError" in result.error
        assert client.stats.failures == 1


def test_malformed_json_is_retried_with_a_correction(fake_server, settings):
    fake_server.queue(200, chat_body("I think B2 is nice {ids: B2"))
    with fast_client(settings) as client:
        result = select(client, MESSAGES, CANDIDATES, 1, "test-v1")
    assert result.valid and result.ids == ["B2"] and result.attempts == 2
    retry_messages = fake_server.requests[1]["body"]["messages"]
    assert retry_messages[-2]["content"] == "I think B2 is nice {ids: B2"
    assert "invalid" in retry_messages[-1]["content"]


def test_answer_outside_candidates_becomes_a_recorded_failure(fake_server, settings):
    outside = chat_body('{"ids": ["Z9"]}')
    for _ in range(3):
        fake_server.queue(200, outside)
    requests = [
        SelectionRequest(tuple(MESSAGES), tuple(CANDIDATES), 1),
        SelectionRequest(({"role": "user", "content": "another"},), tuple(CANDIDATES), 1),
    ]
    with fast_client(dict(settings, llm_concurrency=1)) as client:
        results = run_many(client, requests, "test-v1")
        stats = client.stats.as_dict()
    bad, good = results
    assert not bad.valid and bad.raw == '{"ids": ["Z9"]}' and "Z9" in bad.error and bad.attempts == 3
    assert good.valid and good.ids == ["B2"]
    assert stats["failures"] == 1 and stats["calls"] == 4


def test_schema_is_sent_and_rejection_falls_back_to_tolerant_parsing(fake_server, settings):
    fake_server.queue(400, error_body("response_format is not supported", "invalid_request_error"))
    fake_server.queue(200, chat_body('Sure! ```json\n{"ids": ["C3", "A1"]}\n```'))
    with fast_client(settings) as client:
        result = select(client, MESSAGES, CANDIDATES, 2, "test-v1")
        assert not client.schema_supported
    first, second = (request["body"] for request in fake_server.requests)
    schema = first["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["ids"]["items"]["enum"] == CANDIDATES
    assert schema["properties"]["ids"]["minItems"] == schema["properties"]["ids"]["maxItems"] == 2
    assert "response_format" not in second
    assert result.valid and result.ids == ["C3", "A1"]

    fake_server.queue(400, error_body("response_format is not supported", "invalid_request_error"))
    with fast_client(settings) as client:  # a rerun finds the schema-less answer in the cache
        again = select(client, MESSAGES, CANDIDATES, 2, "test-v1")
        assert again.ids == ["C3", "A1"] and client.stats.cache_hits == 1 and client.stats.calls == 0
    assert len(fake_server.requests) == 3


def test_bounded_concurrency(fake_server, settings):
    fake_server.default = (200, chat_body('{"ids": ["A1"]}'), {}, 0.1)
    requests = [SelectionRequest(({"role": "user", "content": f"q{index}"},), tuple(CANDIDATES), 1) for index in range(6)]
    with fast_client(dict(settings, llm_concurrency=2)) as client:
        results = run_many(client, requests, "test-v1")
    assert all(result.valid for result in results)
    assert fake_server.max_in_flight == 2


# ------------------------------------------------------------------ cache and secrets

def test_second_identical_run_makes_zero_calls(fake_server, settings):
    requests = [SelectionRequest(({"role": "user", "content": f"q{index}"},), tuple(CANDIDATES), 1) for index in range(3)]
    with fast_client(settings) as client:
        first = run_many(client, requests, "test-v1")
    calls = len(fake_server.requests)
    with fast_client(settings) as client:
        second = run_many(client, requests, "test-v1")
        assert client.stats.calls == 0 and client.stats.cache_hits == 3
        # what the reused answers cost when paid for (the fake server's 10 + 5 tokens each), apart from this run's
        stats = client.stats.as_dict()
        assert (stats["prompt_tokens"], stats["completion_tokens"]) == (0, 0)
        assert (stats["cached_prompt_tokens"], stats["cached_completion_tokens"]) == (30, 15)
    assert len(fake_server.requests) == calls == 3
    assert [result.ids for result in first] == [result.ids for result in second]
    assert all(result.cached for result in second)
    with fast_client(dict(settings, llm_temperature=0.7)) as client:  # sampling is part of the key
        run_many(client, requests[:1], "test-v1")
    with fast_client(settings) as client:  # so is the prompt version
        run_many(client, requests[:1], "test-v2")
    assert len(fake_server.requests) == 5


def test_api_key_never_leaks(fake_server, settings, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake_server.queue(500, error_body(f"echoing your key {SECRET}"))
    with fast_client(dict(settings, llm_max_retries=0)) as client:
        failed = select(client, MESSAGES, CANDIDATES, 1, "test-v1")
        select(client, MESSAGES, CANDIDATES, 1, "test-v2")
    assert fake_server.requests[0]["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in failed.error and "***" in failed.error
    assert SECRET not in caplog.text
    for path in (tmp_path / "cache").iterdir():
        assert SECRET.encode() not in path.read_bytes()

    fake_server.queue(401, error_body("invalid api key", "invalid_request_error"))
    with fast_client(settings) as client, pytest.raises(UserError) as caught:
        select(client, MESSAGES, CANDIDATES, 1, "test-v3")
    assert "OPENAI_API_KEY" in str(caught.value) and SECRET not in str(caught.value)


def _write_entries(path, worker, count):
    cache = SqliteCache(path, "chat")
    for index in range(count):
        cache.put(f"{worker}-{index}", f"value {worker} {index}".encode())
    cache.close()


def test_concurrent_cache_writers_do_not_corrupt_it(tmp_path):
    path = tmp_path / CHAT_CACHE_FILE
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_write_entries, args=(path, worker, 200)) for worker in range(3)]
    threads = [threading.Thread(target=_write_entries, args=(path, f"t{worker}", 200)) for worker in range(2)]
    for runner in processes + threads:
        runner.start()
    for runner in processes + threads:
        runner.join(60)
    assert all(process.exitcode == 0 for process in processes)
    cache = SqliteCache(path, "chat")
    assert len(cache) == 5 * 200
    assert cache.get("t1-199") == b"value t1 199"
    cache.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ------------------------------------------------------------------ parsing and settings

def test_parse_selection_is_tolerant_but_strict_about_ids():
    assert parse_selection('{"ids": ["A1"]}', CANDIDATES, 1) == ["A1"]
    assert parse_selection('```json\n["B2", "B2", "C3"]\n```', CANDIDATES, 2) == ["B2", "C3"]
    assert parse_selection('Answer: {"ids": ["C3", "A1", "B2"]} done', CANDIDATES, 2) == ["C3", "A1"]
    assert parse_selection('{"id": "A1"}', CANDIDATES, 1) == ["A1"]
    for text, k in (('{"ids": ["A1"]}', 2), ('{"ids": ["A1", "Q7"]}', 2), ("A1", 1), ("", 1)):
        with pytest.raises(InvalidAnswer):
            parse_selection(text, CANDIDATES, k)
    assert selection_schema(CANDIDATES, 1)["required"] == ["ids"]


def test_settings_defaults_and_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    llm = LLMSettings.from_settings({})
    assert llm.base_url is None and llm.model is None and llm.threads is None and llm.api_key_env == "OPENAI_API_KEY"
    assert llm.cache_dir == tmp_path / "recbole_llmaug"
    with pytest.raises(UserError, match=".gguf"):  # no endpoint: the embedded server needs a local file
        with open_chat_client({"llm_model": "gpt-4o-mini", "llmaug_cache_dir": str(tmp_path)}):
            pass
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert LLMSettings.from_settings({}).base_url == "http://127.0.0.1:9/v1"
    assert LLMSettings.from_settings({"llm_base_url": "http://other/v1"}).base_url == "http://other/v1"
    with pytest.raises(UserError, match="llm_concurrency"):
        LLMSettings.from_settings({"llm_concurrency": 0})
    with pytest.raises(UserError, match="llm_model"):
        with open_chat_client({"llm_base_url": "http://127.0.0.1:9/v1", "llmaug_cache_dir": str(tmp_path)}):
            pass


def test_chat_client_is_usable_directly(fake_server, settings):
    """LLMSeR/LLMRec may call ``complete`` for free-text answers (e.g. user profiles)."""
    fake_server.queue(200, chat_body("A loyal lipstick fan."))
    llm = LLMSettings.from_settings(settings)
    client = ChatClient(llm, fake_server.base_url, "fake-model", None)
    answer = client.complete(MESSAGES, "profile-v1")
    assert answer.text == "A loyal lipstick fan." and not answer.cached
    assert fake_server.requests[0]["body"]["temperature"] == 0.0


def fake_embeddings(body):
    """Deterministic 3-d vectors: (length, vowels, 1) of each input text."""
    data = [{"object": "embedding", "index": index,
             "embedding": [float(len(text)), float(sum(char in "aeiou" for char in text)), 1.0]}
            for index, text in enumerate(body["input"])]
    return {"object": "list", "data": data, "model": body["model"],
            "usage": {"prompt_tokens": 4 * len(data), "total_tokens": 4 * len(data)}}


def test_openai_compatible_embeddings_are_batched_cached_and_normalised(fake_server, settings):
    fake_server.default = (200, fake_embeddings, {}, 0.0)
    fake_server.queue(429, error_body("slow down", "rate_limit"), {"Retry-After": "0"})
    settings = dict(settings, embedding_backend="openai", embedding_batch_size=2)
    embedding = EmbeddingSettings.from_settings(settings)
    assert embedding.model == "text-embedding-3-small"
    texts = ["red lipstick", "hair gel", "red lipstick", "nail polish", "soap"]
    run = embed_texts(texts, embedding, settings=settings)
    assert run.vectors.shape == (5, 3) and run.unique_texts == 4 and run.embedded == 4
    np.testing.assert_allclose(np.linalg.norm(run.vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(run.vectors[0], run.vectors[2])
    assert run.stats["calls"] == 2 and run.stats["retries"] == 1 and run.stats["prompt_tokens"] == 16
    assert all(len(request["body"]["input"]) <= 2 for request in fake_server.requests)
    requests_so_far = len(fake_server.requests)
    again = embed_texts(texts, embedding, settings=settings)
    assert len(fake_server.requests) == requests_so_far and again.cache_hits == 4
    np.testing.assert_allclose(again.vectors, run.vectors)
