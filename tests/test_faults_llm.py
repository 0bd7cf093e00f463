"""Faults of the LLM and embedding layer, driven through the public entry points.

The endpoint is ``FakeOpenAIServer`` (tests/fake_openai.py), a scripted fake that answers with the
faults a careful user met: too few vectors, bad ``index`` fields, HTTP 200 with a broken body, a 500
that does not go away, a dropped connection, invalid chat answers. Each test checks what the caller
sees (a recorded failure, or one paragraph and exit status 3 on the command line), what the cache
holds after the fault (nothing wrong stored, nothing good lost), and that once the fake is fixed a
rerun is correct and computes only what was missing.
"""

import hashlib
import json
import math
import sqlite3

import numpy as np
import pytest

from recbole_llmaug.cli import main
from recbole_llmaug.errors import ServiceError, UserError
from recbole_llmaug.llm import (
    EmbeddingSettings,
    LLMSettings,
    SelectionRequest,
    embed_texts,
    open_chat_client,
    run_many,
    select,
)
from recbole_llmaug.llm.chat import CHAT_CACHE_FILE
from recbole_llmaug.llm.embeddings import EMBEDDING_CACHE_FILE, _text_key

from conftest import fake_llm_settings
from fake_openai import DROP, chat_body, error_body

SECRET = "sk-test-do-not-leak-0123456789"
CANDIDATES = ["A1", "B2", "C3"]
MESSAGES = [{"role": "user", "content": "Which item next?"}]
EMBEDDING_MODEL = "text-embedding-3-small"  # the openai backend's default name; the fake ignores it


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    """Retries without waiting: the retry bounds are under test here, not the backoff."""
    monkeypatch.setattr("recbole_llmaug.llm.chat.backoff_delay", lambda *args: 0.0)


@pytest.fixture
def settings(tmp_path, fake_server, monkeypatch):
    return fake_llm_settings(fake_server, tmp_path, monkeypatch, key=SECRET, no_backoff=False, llm_timeout=5.0,
                             llm_max_retries=1, llm_concurrency=1, embedding_backend="openai", embedding_batch_size=3)


# ------------------------------------------------------------------ a fake /v1/embeddings

def text_vector(text):
    """The fake's vector of ``text``: 4 numbers from its hash, so that every text has its own."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [round(0.1 + byte / 255.0, 6) for byte in digest[:4]]


def unit(vector):
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def correct_reply(body):
    data = [{"object": "embedding", "index": index, "embedding": text_vector(text)}
            for index, text in enumerate(body["input"])]
    return {"object": "list", "data": data, "model": body["model"],
            "usage": {"prompt_tokens": 2 * len(data), "total_tokens": 2 * len(data)}}


def fewer_vectors(reply):
    reply["data"] = reply["data"][1:]  # the first text's vector is missing, the rest keep their index
    return reply


def duplicate_index(reply):
    reply["data"][1]["index"] = 0
    return reply


def out_of_range_index(reply):
    for row in reply["data"]:
        row["index"] += 1  # numbered from 1: the last one is out of range, index 0 is missing
    return reply


def ragged_vectors(reply):
    reply["data"][-1]["embedding"] = reply["data"][-1]["embedding"][:2]
    return reply


def non_finite(reply):
    reply["data"][0]["embedding"][0] = math.nan
    return reply


EMBEDDING_FAULTS = {
    # name: (turn a correct reply into the fault, words the error paragraph must hold, retried?)
    "fewer_vectors": (fewer_vectors, "vectors for", True),
    "duplicate_index": (duplicate_index, "duplicated [0]", True),
    "out_of_range_index": (out_of_range_index, "out of range", True),
    "ragged_vectors": (ragged_vectors, "unequal lengths", True),
    "non_finite": (non_finite, "NaN", True),
    "http_500": (lambda reply: (500, error_body(f"overloaded (your key {SECRET})")), "HTTP 500", True),
    "malformed_json": (lambda reply: '{"object": "list", "data": [{"index": 0, "embe', "not the expected JSON", True),
    "dropped_connection": (lambda reply: DROP, "connection failed or dropped", True),
    "http_400": (lambda reply: (400, error_body("input too long", "invalid_request_error")), "HTTP 400", False),
}


class FakeEmbeddingEndpoint:
    """Reply function for the fake server: correct vectors, except that while ``fault`` is set,
    a batch holding ``trigger`` gets ``fault(correct reply)`` (``times`` times, then it heals)."""

    def __init__(self, fault=None, trigger=None, times=None):
        self.fault, self.trigger, self.times = fault, trigger, times
        self.batches = []  # the inputs of every request, in arrival order

    def __call__(self, body):
        self.batches.append(list(body["input"]))
        reply = correct_reply(body)
        if self.fault is not None and self.trigger in body["input"] and self.times != 0:
            self.times = None if self.times is None else self.times - 1
            return self.fault(reply)
        return reply

    def texts_sent(self):
        return [text for batch in self.batches for text in batch]

    def requests_with(self, text):
        return sum(text in batch for batch in self.batches)


def cached_vectors(cache_dir):
    """``{key: vector}`` of everything in the embedding cache."""
    with sqlite3.connect(cache_dir / EMBEDDING_CACHE_FILE) as connection:
        rows = connection.execute("SELECT key, value FROM embeddings").fetchall()
    return {key: np.frombuffer(value, dtype=np.float32) for key, value in rows}


def assert_cache_holds_exactly(cache_dir, texts):
    """The cache holds the right vector of each of ``texts`` and nothing else."""
    stored = cached_vectors(cache_dir)
    expected = {_text_key("openai", EMBEDDING_MODEL, text): text for text in texts}
    assert set(stored) == set(expected)
    for key, text in expected.items():
        np.testing.assert_allclose(stored[key], text_vector(text), rtol=1e-6)


def one_paragraph(message):
    assert "\n" not in message.strip() and "Traceback" not in message and SECRET not in message
    return message


# ------------------------------------------------------------------ embeddings, Python API

TEXTS = [f"soap number {index}" for index in range(10)]  # all the same length: batched in this order
TRIGGER = TEXTS[4]  # in the second batch of three: texts 0-2 are done when the fault comes


@pytest.mark.parametrize("fault", sorted(EMBEDDING_FAULTS))
def test_embedding_fault_is_never_cached_and_a_rerun_embeds_only_the_rest(fault, fake_server, settings):
    damage, words, retried = EMBEDDING_FAULTS[fault]
    endpoint = FakeEmbeddingEndpoint(damage, TRIGGER)
    fake_server.default = (200, endpoint, {}, 0.0)
    embedding = EmbeddingSettings.from_settings(settings)
    cache_dir = embedding.cache_dir

    with pytest.raises(ServiceError) as caught:
        embed_texts(TEXTS, embedding, settings=settings)
    message = one_paragraph(str(caught.value))
    assert caught.value.exit_code == 3
    assert words in message and f"{fake_server.base_url}/embeddings" in message and EMBEDDING_MODEL in message
    assert "3 of 10" in message and "rerun" in message
    assert endpoint.requests_with(TRIGGER) == (2 if retried else 1)  # llm_max_retries=1
    assert_cache_holds_exactly(cache_dir, TEXTS[:3])

    endpoint.fault = None  # the server is fixed
    sent_before = len(endpoint.texts_sent())
    run = embed_texts(TEXTS, embedding, settings=settings)
    assert sorted(endpoint.texts_sent()[sent_before:]) == sorted(TEXTS[3:])
    assert run.cache_hits == 3 and run.embedded == 7
    np.testing.assert_allclose(run.vectors, [unit(text_vector(text)) for text in TEXTS], rtol=1e-5)
    assert_cache_holds_exactly(cache_dir, TEXTS)


def test_embedding_fault_that_goes_away_is_retried_within_the_bounds(fake_server, settings):
    endpoint = FakeEmbeddingEndpoint(fewer_vectors, TRIGGER, times=1)
    fake_server.default = (200, endpoint, {}, 0.0)
    run = embed_texts(TEXTS, EmbeddingSettings.from_settings(settings), settings=settings)
    assert run.stats["retries"] == 1 and endpoint.requests_with(TRIGGER) == 2
    np.testing.assert_allclose(run.vectors, [unit(text_vector(text)) for text in TEXTS], rtol=1e-5)


def test_vectors_are_matched_to_texts_by_index_not_by_position(fake_server, settings):
    def reversed_rows(body):
        reply = correct_reply(body)
        reply["data"].reverse()  # indices stay right: a server may send rows in any order
        return reply

    fake_server.default = (200, reversed_rows, {}, 0.0)
    run = embed_texts(TEXTS, EmbeddingSettings.from_settings(settings), settings=settings)
    np.testing.assert_allclose(run.vectors, [unit(text_vector(text)) for text in TEXTS], rtol=1e-5)
    assert run.stats["retries"] == 0


def test_vectors_of_another_dimension_than_the_cache_are_not_cached(fake_server, settings):
    fake_server.default = (200, correct_reply, {}, 0.0)
    embedding = EmbeddingSettings.from_settings(settings)
    embed_texts(TEXTS[:3], embedding, settings=settings)

    def three_dimensional(body):  # the model behind the name changed
        reply = correct_reply(body)
        for row in reply["data"]:
            row["embedding"] = row["embedding"][:3]
        return reply

    fake_server.default = (200, three_dimensional, {}, 0.0)
    with pytest.raises(ServiceError, match="dimension 3 where the cache holds dimension 4"):
        embed_texts(TEXTS, embedding, settings=settings)
    assert_cache_holds_exactly(embedding.cache_dir, TEXTS[:3])


def test_refused_key_midway_keeps_the_finished_batches_and_says_so(fake_server, settings):
    endpoint = FakeEmbeddingEndpoint(lambda reply: (401, error_body("invalid api key")), TRIGGER)
    fake_server.default = (200, endpoint, {}, 0.0)
    embedding = EmbeddingSettings.from_settings(settings)
    with pytest.raises(UserError) as caught:
        embed_texts(TEXTS, embedding, settings=settings)
    assert not isinstance(caught.value, ServiceError) and caught.value.exit_code == 2
    assert "OPENAI_API_KEY" in one_paragraph(str(caught.value)) and "3 of 10" in str(caught.value)
    assert_cache_holds_exactly(embedding.cache_dir, TEXTS[:3])


# ------------------------------------------------------------------ embeddings, command line

ITEM_TEXTS = {f"i{item}": f"Product number {item}" for item in range(1, 21)}  # tiny_dataset's titles
# Batches of 4 by text length: items 1-4, 5-8, 9-12, ... so the fault comes after 8 texts are done.
CLI_TRIGGER = "Product number 9"


def cli_args(data_path, tmp_path, base_url):
    return ["--augment=item_emb", "--dataset=tiny", f"--data_path={data_path}",
            f"--augment_path={tmp_path / 'augmented'}", f"--llmaug_cache_dir={tmp_path / 'cache'}",
            "--embedding_backend=openai", f"--llm_base_url={base_url}", "--llm_max_retries=1",
            "--embedding_batch_size=4", "--llm_timeout=5", "--state=ERROR"]


def read_item_emb(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    return {row.split("\t")[0]: np.array(row.split("\t")[1].split(), dtype=np.float64) for row in lines[1:]}


@pytest.mark.parametrize("fault", ["fewer_vectors", "duplicate_index", "out_of_range_index", "http_500",
                                   "malformed_json", "dropped_connection"])
def test_cli_embedding_fault_gives_one_paragraph_and_a_rerun_completes(fault, fake_server, tiny_dataset, tmp_path,
                                                                        monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    damage, words, _ = EMBEDDING_FAULTS[fault]
    endpoint = FakeEmbeddingEndpoint(damage, CLI_TRIGGER)
    fake_server.default = (200, endpoint, {}, 0.0)
    args = cli_args(tiny_dataset, tmp_path, fake_server.base_url)
    output = tmp_path / "augmented" / "tiny" / "tiny.itememb"

    code = main(args)
    stderr = capsys.readouterr().err
    assert code == 3 and "Traceback" not in stderr and SECRET not in stderr
    assert stderr.count("error: ") == 1
    paragraph = stderr.split("error: ", 1)[1]
    assert paragraph.endswith("\n") and paragraph.count("\n") == 1  # the error is the last thing printed
    assert words in paragraph and fake_server.base_url in paragraph and EMBEDDING_MODEL in paragraph
    assert "8 of 20" in paragraph and "rerun" in paragraph
    assert not output.exists()  # no output and no manifest: nothing downstream reads a partial file
    done = [f"Product number {item}" for item in range(1, 9)]
    assert_cache_holds_exactly(tmp_path / "cache", done)

    endpoint.fault = None  # the server is fixed
    sent_before = len(endpoint.texts_sent())
    assert main(args) == 0
    assert sorted(endpoint.texts_sent()[sent_before:]) == sorted(set(ITEM_TEXTS.values()) - set(done))
    vectors = read_item_emb(output)
    assert set(vectors) == set(ITEM_TEXTS)
    for item, text in ITEM_TEXTS.items():
        np.testing.assert_allclose(vectors[item], unit(text_vector(text)), rtol=1e-4, atol=1e-6)
    assert_cache_holds_exactly(tmp_path / "cache", ITEM_TEXTS.values())


# ------------------------------------------------------------------ chat answers

def chat_cache_texts(settings):
    path = LLMSettings.from_settings(settings).cache_dir / CHAT_CACHE_FILE
    with sqlite3.connect(path) as connection:
        return [json.loads(value)["text"] for (value,) in connection.execute("SELECT value FROM chat")]


@pytest.mark.parametrize("bad, k", [('{"ids": ["Z9"]}', 1), ("", 1), ('{"ids": ["B2", "B2"]}', 2)],
                         ids=["outside_candidates", "empty", "duplicate_ids"])
def test_invalid_answers_are_not_cached_and_a_rerun_replays_the_failure_unless_told_to_retry(bad, k, fake_server,
                                                                                              settings):
    """The answer cache holds valid answers only; the failed request is recorded apart, so a resumed pass
    replays it without a call (counted as cached, with what it cost), unless ``llm_retry_failed``."""
    for _ in range(3):  # the first answer and both corrections
        fake_server.queue(200, chat_body(bad))
    fake_server.default = (200, chat_body('{"ids": ["C3", "A1"]}'), {}, 0.0)
    with open_chat_client(settings, backoff_base=0.0) as client:
        failed = select(client, MESSAGES, CANDIDATES, k, "faults-v1")
    assert not failed.valid and failed.attempts == 3 and failed.raw == bad
    assert chat_cache_texts(settings) == []

    with open_chat_client(settings, backoff_base=0.0) as client:  # the rerun: the same failure, no call
        replayed = select(client, MESSAGES, CANDIDATES, k, "faults-v1")
        stats = client.stats.as_dict()
    assert stats["calls"] == 0 and stats["failures"] == 1 and stats["cache_hits"] == 3
    assert (stats["cached_prompt_tokens"], stats["cached_completion_tokens"]) == (30, 15)  # 3 answers of 10 + 5
    assert not replayed.valid and (replayed.raw, replayed.error, replayed.attempts) == (bad, failed.error, 3)
    assert len(fake_server.requests) == 3

    with open_chat_client(dict(settings, llm_retry_failed=True), backoff_base=0.0) as client:  # the server is fixed
        fixed = select(client, MESSAGES, CANDIDATES, k, "faults-v1")
        assert client.stats.calls == 1 and client.stats.cache_hits == 0
    assert fixed.valid and fixed.ids == ["C3", "A1"][:k]
    with open_chat_client(settings, backoff_base=0.0) as client:  # and that valid answer is cached
        again = select(client, MESSAGES, CANDIDATES, k, "faults-v1")
        assert client.stats.calls == 0 and again.cached and again.ids == fixed.ids


def test_a_failure_is_replayed_only_for_the_same_correction_rounds_and_never_after_a_transport_fault(fake_server,
                                                                                                    settings):
    fake_server.default = (200, chat_body('{"ids": ["Z9"]}'), {}, 0.0)
    with open_chat_client(settings, backoff_base=0.0) as client:
        assert not select(client, MESSAGES, CANDIDATES, 1, "faults-v1", max_invalid_retries=1).valid
        assert not select(client, MESSAGES, CANDIDATES, 1, "faults-v1", max_invalid_retries=1).valid
        assert client.stats.calls == 2  # replayed the second time
        assert not select(client, MESSAGES, CANDIDATES, 1, "faults-v1", max_invalid_retries=2).valid
        assert client.stats.calls == 5  # more rounds: asked again (the first two answers were never cached)

    fake_server.default = (500, error_body("boom"), {}, 0.0)
    with open_chat_client(settings, backoff_base=0.0) as client:
        down = select(client, MESSAGES, CANDIDATES, 1, "faults-v2")
    assert not down.valid and "500" in down.error
    fake_server.default = (200, chat_body('{"ids": ["B2"]}'), {}, 0.0)
    with open_chat_client(settings, backoff_base=0.0) as client:  # the server is back: asked again
        back = select(client, MESSAGES, CANDIDATES, 1, "faults-v2")
    assert back.valid and back.ids == ["B2"]


def test_an_answer_valid_after_a_correction_is_replayed_without_calls(fake_server, settings):
    fake_server.queue(200, chat_body('{"ids": ["Z9"]}'))
    with open_chat_client(settings, backoff_base=0.0) as client:
        first = select(client, MESSAGES, CANDIDATES, 1, "faults-v1")
    assert first.valid and first.attempts == 2 and first.ids == ["B2"]
    assert '{"ids": ["Z9"]}' not in chat_cache_texts(settings)
    with open_chat_client(settings, backoff_base=0.0) as client:
        again = select(client, MESSAGES, CANDIDATES, 1, "faults-v1")
        assert client.stats.calls == 0
    assert again.ids == ["B2"] and again.cached and len(fake_server.requests) == 2


def test_a_cached_answer_the_caller_rejects_is_asked_again(fake_server, settings):
    """A cache left by an older version may hold failures: they are replaced, not replayed."""
    fake_server.queue(200, chat_body("junk"))
    with open_chat_client(settings, backoff_base=0.0) as client:
        assert client.complete(MESSAGES, "free-v1", accept=lambda text: True).text == "junk"
        assert client.complete(MESSAGES, "free-v1", accept=lambda text: True).cached
        answer = client.complete(MESSAGES, "free-v1", accept=lambda text: text != "junk")
    assert not answer.cached and answer.text == '{"ids": ["B2"]}' and len(fake_server.requests) == 2
    assert chat_cache_texts(settings) == ['{"ids": ["B2"]}']

    fake_server.queue(200, chat_body(None))  # an empty free-text answer is returned but never cached
    with open_chat_client(settings, backoff_base=0.0) as client:
        assert client.complete(MESSAGES, "free-v2").text == ""
        assert client.complete(MESSAGES, "free-v2").text == '{"ids": ["B2"]}'
    assert len(fake_server.requests) == 4


MALFORMED_CHAT = {
    "broken_json": '{"id": "fake", "choices": [{"message": {"content": "{\\"ids\\": [\\"A1',
    "no_choices": {"id": "fake", "object": "chat.completion", "choices": []},
    "json_list": [1, 2, 3],
    "content_not_text": {"id": "fake", "choices": [{"index": 0, "message": {"role": "assistant", "content": 5}}]},
}


def questions(count):
    return [SelectionRequest(({"role": "user", "content": f"q{index}"},), tuple(CANDIDATES), 1) for index in range(count)]


@pytest.mark.parametrize("malformed", sorted(MALFORMED_CHAT))
def test_http_200_with_a_malformed_body_fails_only_its_request(malformed, fake_server, settings):
    def reply(body):
        if body["messages"][0]["content"] == "q1":
            return MALFORMED_CHAT[malformed]
        return chat_body('{"ids": ["A1"]}')

    fake_server.default = (200, reply, {}, 0.0)
    with open_chat_client(dict(settings, llm_concurrency=2), backoff_base=0.0) as client:
        results = run_many(client, questions(3), "faults-v1")
        stats = client.stats.as_dict()
    assert [result.valid for result in results] == [True, False, True]
    assert results[0].ids == results[2].ids == ["A1"]
    assert "HTTP 200" in results[1].error and "after 2 attempt(s)" in results[1].error
    assert stats["failures"] == 1 and stats["retries"] == 1 and stats["calls"] == 2
    assert sorted(chat_cache_texts(settings)) == ['{"ids": ["A1"]}'] * 2

    fake_server.default = (200, chat_body('{"ids": ["C3"]}'), {}, 0.0)  # the server is fixed
    with open_chat_client(settings, backoff_base=0.0) as client:
        rerun = run_many(client, questions(3), "faults-v1")
        assert client.stats.calls == 1 and client.stats.cache_hits == 2
    assert [result.ids for result in rerun] == [["A1"], ["C3"], ["A1"]]


def test_malformed_body_once_is_retried(fake_server, settings):
    fake_server.queue(200, MALFORMED_CHAT["broken_json"])
    with open_chat_client(settings, backoff_base=0.0) as client:
        result = select(client, MESSAGES, CANDIDATES, 1, "faults-v1")
        assert client.stats.retries == 1 and client.stats.failures == 0
    assert result.valid and result.ids == ["B2"] and result.attempts == 1


def test_a_refused_key_stops_the_batch_without_sending_the_rest(fake_server, settings):
    fake_server.default = (401, error_body("invalid api key", "invalid_request_error"), {}, 0.0)
    with open_chat_client(settings, backoff_base=0.0) as client, pytest.raises(UserError, match="OPENAI_API_KEY"):
        run_many(client, questions(6), "faults-v1")
    assert len(fake_server.requests) <= 2  # q0, and q1 if the single worker took it before the cancel
