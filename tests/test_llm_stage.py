"""The LLM stage at dataset scale: cheaper selection requests, generated JSON objects, pickers,
user vectors from item vectors, resuming after a kill, and sharding over Ray.

The endpoint is ``FakeOpenAIServer`` (tests/fake_openai.py), a scripted fake (not a model) that
answers what each test queues and counts the requests it gets; it stands in for the LLM where the
test is about parsing, validation, caching and how many calls are made.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from recbole_llmaug.errors import UserError
from recbole_llmaug.llm import (
    ChatClient,
    JsonRequest,
    LLMSettings,
    PickTask,
    SelectionRequest,
    candidate_labels,
    compact_title,
    generate_json,
    open_chat_client,
    open_picker,
    run_many,
    run_many_json,
    select,
    selection_request,
)
from recbole_llmaug.llm.cache import SqliteCache
from recbole_llmaug.llm.chat import CHAT_CACHE_FILE, CallStats
from recbole_llmaug.llm.schema import answer_token_bound, check_object, json_bound
from recbole_llmaug.llm.selection import labels_grammar, parse_labels, selection_schema
from recbole_llmaug.llm.settings import free_cores
from recbole_llmaug.options import validate

from conftest import fake_llm_settings
from fake_openai import chat_body

REPO = Path(__file__).resolve().parent.parent
CATEGORIES = ["Lips", "Nails", "Hair", "Skin", "Eyes"]
PROFILE_SCHEMA = {
    "type": "object",
    "properties": {
        "age_range": {"type": "string", "enum": ["<18", "18-25", "26-35", "36-50", ">50"]},
        "gender": {"type": "string", "enum": ["female", "male", "unknown"]},
        "liked_categories": {"type": "array", "items": {"type": "string", "enum": CATEGORIES}, "maxItems": 3},
        "disliked_categories": {"type": "array", "items": {"type": "string", "enum": CATEGORIES}, "maxItems": 3},
    },
    "required": ["age_range", "gender", "liked_categories", "disliked_categories"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "user", "content": "Describe the customer who bought a red lipstick and a lip liner."}]


@pytest.fixture
def settings(tmp_path, fake_server, monkeypatch):
    return fake_llm_settings(fake_server, tmp_path, monkeypatch, llm_timeout=5.0, llm_max_retries=1, llm_concurrency=1)


def bodies(server):
    return [request["body"] for request in server.requests]


# ------------------------------------------------------------------ generate_json

def test_bad_field_is_missing_extra_field_dropped_and_valid_fields_kept(fake_server, settings):
    answer = {"age_range": "26-35", "gender": "robot", "liked_categories": ["Lips", "Nails"], "mood": "happy"}
    fake_server.queue(200, chat_body(json.dumps(answer)))
    with open_chat_client(settings) as client:
        result = generate_json(client, MESSAGES, PROFILE_SCHEMA, "profile-v1")
    assert result.valid and result.attempts == 1
    assert result.value == {"age_range": "26-35", "liked_categories": ["Lips", "Nails"]}
    assert result.missing == ["gender", "disliked_categories"]  # a bad value and an absent field, never invented
    assert result.dropped == ["mood"] and "gender" in result.problems
    sent = bodies(fake_server)[0]
    assert sent["response_format"]["json_schema"]["schema"] == PROFILE_SCHEMA
    assert sent["max_tokens"] == answer_token_bound(PROFILE_SCHEMA) < 256  # bounded by the schema


def test_non_object_is_retried_then_a_failure_that_is_not_cached(fake_server, settings):
    fake_server.default = (200, chat_body('["26-35", "female"]'), {}, 0.0)  # JSON, but not an object
    with open_chat_client(settings) as client:
        result = generate_json(client, MESSAGES, PROFILE_SCHEMA, "profile-v1", max_invalid_retries=2)
        assert not result.valid and result.value == {} and result.attempts == 3 and "not a JSON object" in result.error
        assert client.stats.failures == 1
    assert len(fake_server.requests) == 3
    assert "not a JSON object" in bodies(fake_server)[1]["messages"][-1]["content"]
    assert bodies(fake_server)[1]["max_tokens"] == 256  # a correction may use llm_max_tokens
    assert len(SqliteCache(Path(settings["llmaug_cache_dir"]) / CHAT_CACHE_FILE, "chat")) == 0
    with open_chat_client(settings) as client:  # a rerun asks again: the failure was not replayed
        generate_json(client, MESSAGES, PROFILE_SCHEMA, "profile-v1", max_invalid_retries=0)
        assert client.stats.calls == 1 and client.stats.cache_hits == 0


def test_valid_object_after_a_correction_is_cached_for_the_first_request(fake_server, settings):
    fake_server.queue(200, chat_body("I think she is young."))
    fake_server.queue(200, chat_body('{"age_range": "18-25", "gender": "female"}'))
    with open_chat_client(settings) as client:
        first = generate_json(client, MESSAGES, PROFILE_SCHEMA, "profile-v1")
    assert first.valid and first.attempts == 2 and first.value == {"age_range": "18-25", "gender": "female"}
    with open_chat_client(settings) as client:
        again = run_many_json(client, [JsonRequest(tuple(MESSAGES), PROFILE_SCHEMA)], "profile-v1")[0]
        assert again.cached and again.value == first.value and client.stats.calls == 0
    assert len(fake_server.requests) == 2


def test_run_many_json_keeps_request_order_and_counts(fake_server, settings):
    def reply(body):
        text = body["messages"][0]["content"]
        return chat_body(json.dumps({"gender": "female" if "woman" in text else "male"}))

    fake_server.default = (200, reply, {}, 0.0)
    requests = [JsonRequest(({"role": "user", "content": who},), PROFILE_SCHEMA) for who in ("a man", "a woman", "an old man")]
    # three different requests: two equal ones in flight at once may or may not meet the first's cached answer
    with open_chat_client(dict(settings, llm_concurrency=3)) as client:
        results = run_many_json(client, requests, "profile-v1")
        assert client.stats.calls == 3 and client.stats.prompt_tokens == 30
    assert [result.value["gender"] for result in results] == ["male", "female", "male"]


def test_check_object_and_schema_bounds():
    assert check_object([1, 2], PROFILE_SCHEMA) is None and check_object("x", PROFILE_SCHEMA) is None
    checked = check_object({"liked_categories": ["Lips", "Feet"]}, PROFILE_SCHEMA)  # one bad item: the field fails
    assert checked.value == {} and "liked_categories" in checked.missing
    checked = check_object({"liked_categories": ["Lips", "Hair", "Skin", "Eyes"]}, PROFILE_SCHEMA)  # > maxItems
    assert checked.value == {} and checked.problems["liked_categories"]
    # {"ids":["AB","AB"]} compact is 19 bytes with separators { [ , ] : }
    assert json_bound(selection_schema(["A", "AB"], 2)) == (19, 6)
    assert answer_token_bound(selection_schema(["A", "AB"], 2)) == 19 + 4 * 6 + 8
    assert answer_token_bound({"type": "object", "properties": {"bio": {"type": "string"}}}) is None  # unbounded
    assert answer_token_bound({"type": "string", "maxLength": 10}) == 2 + 60 + 8


# ------------------------------------------------------------------ cheaper selections

def test_labels_are_mapped_back_to_ids_and_answers_are_bounded(fake_server, settings):
    fake_server.default = (200, chat_body('{"ids": ["C", "A"]}'), {}, 0.0)
    request = selection_request("Pick {k}.", ["Red lipstick"], ["B00X1", "B00X2", "B00X3"],
                                ["Lip gloss", "Hammer", "Lip liner"], 2)
    with open_chat_client(settings) as client:
        result = run_many(client, [request], "labels-v1")[0]
    assert result.valid and result.ids == ["B00X3", "B00X1"]
    sent = bodies(fake_server)[0]
    assert sent["response_format"]["json_schema"]["schema"]["properties"]["ids"]["items"]["enum"] == ["A", "B", "C"]
    assert sent["max_tokens"] == answer_token_bound(selection_schema(["A", "B", "C"], 2))
    assert "cache_prompt" not in sent and "grammar" not in sent  # llama.cpp fields only for the embedded server
    fake_server.queue(200, chat_body('{"ids": ["Y"]}'))
    with open_chat_client(dict(settings, llm_selection_max_tokens=7)) as client:
        assert select(client, MESSAGES, ["X", "Y"], 1, "labels-v1").ids == ["Y"]
    assert bodies(fake_server)[1]["max_tokens"] == 7 and len(fake_server.requests) == 2


def test_labels_format_sends_a_grammar_and_cache_prompt_to_llama_cpp(fake_server, settings):
    fake_server.queue(200, chat_body("B,B"))  # a repeat: invalid, corrected
    fake_server.queue(200, chat_body("B,A"))
    llm = LLMSettings.from_settings(dict(settings, llm_selection_format="labels", llm_cache_prompt=False))
    client = ChatClient(llm, fake_server.base_url, "fake-model", None, llama_cpp=True)
    result = select(client, MESSAGES, ["i1", "i2", "i3"], 2, "labels-v1", labels=["A", "B", "C"])
    assert result.valid and result.ids == ["i2", "i1"] and result.attempts == 2
    first = bodies(fake_server)[0]
    assert "response_format" not in first and first["cache_prompt"] is False
    assert first["grammar"] == labels_grammar(["A", "B", "C"], 2)
    assert first["max_tokens"] == 2 * 2 + 8
    assert parse_labels(" C , A ", ["A", "B", "C"], 2) == ["C", "A"]
    # the same settings on a server that is not llama.cpp: JSON under a schema, no llama.cpp fields
    other = ChatClient(llm, fake_server.base_url, "fake-model", None)
    fake_server.queue(200, chat_body('{"ids": ["C"]}'))
    assert select(other, MESSAGES, ["i1", "i2", "i3"], 1, "labels-v1", labels=["A", "B", "C"]).ids == ["i3"]
    assert "grammar" not in bodies(fake_server)[-1] and "response_format" in bodies(fake_server)[-1]


def test_grammar_is_exactly_k_labels_and_escapes_quotes():
    assert labels_grammar(["A", 'x"y'], 1) == 'root ::= label\nlabel ::= "A" | "x\\"y"\n'
    assert labels_grammar(["A", "B"], 3).startswith('root ::= label "," label "," label\n')


def test_compact_prompts_share_their_prefix():
    assert compact_title("Nars Larger Than Life Lip Gloss, Chelsea Girls 0.2 oz", 30) == "Nars Larger Than Life Lip..."
    assert compact_title("Short &amp; sweet", 30) == "Short & sweet" and compact_title(None, 10) == ""
    assert len(compact_title("A" * 50, 20)) == 20
    assert candidate_labels(28, "letters")[:3] == ["A", "B", "C"] and candidate_labels(28, "letters")[25:] == ["Z", "AA", "AB"]
    assert candidate_labels(3, "numbers") == ["1", "2", "3"] and candidate_labels(2, "ids", ["x", "y"]) == ["x", "y"]
    one = selection_request("Pick {k} of them.", ["Lipstick"], ["i1", "i2"], ["Gloss", "Hammer"], 1)
    two = selection_request("Pick {k} of them.", ["Shampoo", "Gel"], ["i7", "i9"], ["Comb", "Soap"], 1)
    assert one.messages[0] == two.messages[0] == {"role": "system", "content": "Pick 1 of them."}  # shared, first
    assert one.labels == ("A", "B") and "A: Gloss\nB: Hammer" in one.messages[1]["content"]
    assert selection_request("x", [], ["i1"], ["t"], 1, label_style="ids").labels is None


def test_free_cores_subtracts_the_load(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    for load, expected in ((0.1, 4), (0.9, 3), (1.3, 2), (2.6, 1), (9.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        assert free_cores() == expected, load
    assert LLMSettings.from_settings({"llm_threads": 3}).threads == 3


def test_new_options_are_declared_and_checked():
    validate({"picker": "embedding", "llm_selection_format": "labels", "user_emb_source": "item_mean",
              "llm_threads": None, "llm_parallel": 2, "ray_address": "auto"})
    for key, bad in (("picker", "bm25"), ("llm_parallel", 0), ("user_emb_source", "mean"),
                     ("llm_selection_format", "xml"), ("augment_shard_size", 0)):
        with pytest.raises(UserError, match=key):
            validate({key: bad})


# ------------------------------------------------------------------ pickers

def test_embedding_picker_ranks_by_cosine_to_the_mean_history():
    vectors = {"h1": np.array([1.0, 0.0]), "h2": np.array([0.0, 1.0]),  # mean history direction (1, 1)
               "c_far": np.array([1.0, -1.0]), "c_near": np.array([2.0, 2.1]), "c_mid": np.array([1.0, 0.1])}
    task = PickTask("u1", ("h1", "h2"), ("c_far", "c_mid", "c_near"), 2)
    with open_picker({}, "v1", item_vectors=vectors, kind="embedding") as picker:
        result = picker.pick_many([task])[0]
    assert result.valid and result.ids == ["c_near", "c_mid"]
    assert result.scores[0] < result.scores[1] < result.scores[2]
    with open_picker({}, "v1", item_vectors=vectors, kind="embedding") as picker:
        lonely = picker.pick_many([PickTask("u2", ("unknown",), ("c_far",), 1)])[0]
    assert not lonely.valid and lonely.ids == []


def test_random_picker_is_seeded_per_task():
    tasks = [PickTask(f"u{index}", (), tuple(f"c{j}" for j in range(10)), 3) for index in range(20)]
    with open_picker({"seed": 1}, "v1", kind="random") as picker:
        first = [result.ids for result in picker.pick_many(tasks)]
    with open_picker({"seed": 1}, "v1", kind="random") as picker:
        assert [result.ids for result in picker.pick_many(tasks)] == first
    assert all(len(set(ids)) == 3 for ids in first) and len({tuple(ids) for ids in first}) > 1
    with pytest.raises(UserError, match="picker"):
        with open_picker({}, "v1", kind="bm25"):
            pass


def test_llm_picker_asks_with_labels_and_returns_item_ids(fake_server, settings):
    fake_server.default = (200, chat_body('{"ids": ["B"]}'), {}, 0.0)
    titles = {"h1": "Red Lipstick", "c1": "Hammer", "c2": "Lip Gloss"}
    with open_picker(dict(settings, picker="llm"), "pick-v1", titles=titles) as picker:
        result = picker.pick_many([PickTask("u1", ("h1",), ("c1", "c2"), 1)])[0]
    assert result.valid and result.ids == ["c2"]
    content = bodies(fake_server)[0]["messages"][1]["content"]
    assert "- Red Lipstick" in content and "A: Hammer\nB: Lip Gloss" in content


# ------------------------------------------------------------------ user vectors from item vectors

def test_user_vector_is_the_mean_of_its_training_items():
    from recbole_llmaug.augment.text_embeddings import user_mean_vectors

    items = ["i1", "i2", "i3"]
    matrix = np.array([[1.0, 0.0], [0.0, 3.0], [0.0, 0.0]], dtype=np.float32)  # i3 has no vector
    users, vectors, empty = user_mean_vectors({"u1": ["i1", "i2", "i3"], "u2": ["i3"]}, items, matrix, normalize=False)
    assert users == ["u1", "u2"] and empty == ["u2"]
    np.testing.assert_allclose(vectors[0], [0.5, 1.5])  # i3 left out of the mean, not counted as zero
    np.testing.assert_allclose(vectors[1], [0.0, 0.0])
    _, unit, _ = user_mean_vectors({"u1": ["i1", "i2"]}, items, matrix, normalize=True)
    np.testing.assert_allclose(unit[0], np.array([0.5, 1.5]) / np.linalg.norm([0.5, 1.5]), rtol=1e-6)


# ------------------------------------------------------------------ a fake /v1/embeddings, for the runs below

def text_vector(text):
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [round(0.1 + byte / 255.0, 6) for byte in digest[:4]]


def embedding_reply(body):
    data = [{"object": "embedding", "index": index, "embedding": text_vector(text)}
            for index, text in enumerate(body["input"])]
    return {"object": "list", "data": data, "model": body["model"],
            "usage": {"prompt_tokens": len(data), "total_tokens": len(data)}}


def read_vectors(path):
    lines = Path(path).read_text(encoding="utf-8").splitlines()[1:]
    return {line.split("\t")[0]: np.array(line.split("\t")[1].split(), dtype=np.float64) for line in lines}


def aug_settings(root, base_url, **extra):
    return dict({"dataset": "tiny", "data_path": str(root), "llmaug_cache_dir": str(root / "cache"),
                 "augment_path": str(root / "augmented"), "embedding_backend": "openai", "llm_base_url": base_url,
                 "embedding_batch_size": 4, "llm_max_retries": 0, "llm_timeout": 20.0}, **extra)


def test_user_emb_from_item_mean_builds_items_first_and_calls_no_model_for_users(fake_server, tiny_dataset, monkeypatch):
    from recbole_llmaug.augment import run_augmentor
    from recbole_llmaug.augment.text_embeddings import user_train_histories
    from recbole_llmaug.augment.files import DatasetFiles

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    fake_server.default = (200, embedding_reply, {}, 0.0)
    settings = aug_settings(tiny_dataset, fake_server.base_url, user_emb_source="item_mean")
    manifest = run_augmentor("user_emb", settings)
    item_requests = len(fake_server.requests)
    assert item_requests == 5  # 20 item texts in batches of 4; the users cost nothing
    assert manifest["usage"]["calls"] == 0 and manifest["fingerprint"]["source"] == "item_mean"
    folder = tiny_dataset / "augmented" / "tiny"
    items, users = read_vectors(folder / "tiny.itememb"), read_vectors(folder / "tiny.useremb")
    histories = user_train_histories(DatasetFiles(dict(settings, MODEL_TYPE=None)))
    for user in ("u1", "u7"):
        mean = np.mean([items[item] for item in histories[user]], axis=0)
        np.testing.assert_allclose(users[user], mean / np.linalg.norm(mean), rtol=1e-4, atol=1e-6)
    assert run_augmentor("user_emb", settings)["reused"] and len(fake_server.requests) == item_requests


# ------------------------------------------------------------------ interrupted and resumed

def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def python_env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                OPENAI_API_KEY="sk-test", OMP_NUM_THREADS="1")


def kill_at_request(fake_server, n, answer, args):
    """Run ``args``; hold the ``n``-th request to ``fake_server`` unanswered and SIGKILL the process while it waits
    (the killed client never gets that answer). ``answer(body)``: every other request's reply body."""
    hold = {"release": False}

    def reply(body):
        if len(fake_server.requests) == n:
            while not hold["release"]:
                time.sleep(0.02)
        return answer(body)

    fake_server.default = (200, reply, {}, 0.0)
    process = subprocess.Popen(args, env=python_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(fake_server.requests) >= n or process.poll() is not None, 120, f"request {n}")
        assert process.poll() is None, process.stderr.read().decode()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        hold["release"] = True
        if process.poll() is None:
            process.kill()


def test_killed_augmentation_resumes_without_repeating_a_call(fake_server, tiny_dataset, tmp_path):
    """SIGKILL while the 4th embedding request is in flight; the rerun asks for exactly the rest."""
    args = [sys.executable, str(REPO / "run_recbole_llmaug.py"), "--augment=item_emb", "--dataset=tiny",
            f"--data_path={tiny_dataset}", f"--augment_path={tmp_path / 'augmented'}",
            f"--llmaug_cache_dir={tmp_path / 'cache'}", "--embedding_backend=openai",
            f"--llm_base_url={fake_server.base_url}", "--embedding_batch_size=4", "--llm_max_retries=0"]
    kill_at_request(fake_server, 4, embedding_reply, args)
    answered_before_kill = 3
    total = 5  # 20 texts, batches of 4
    before = len(fake_server.requests)
    rerun = subprocess.run(args, env=python_env(), capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert len(fake_server.requests) - before == total - answered_before_kill
    assert len(read_vectors(tmp_path / "augmented" / "tiny" / "tiny.itememb")) == 20


SELECTION_SCRIPT = textwrap.dedent("""
    import sys
    from recbole_llmaug.llm import SelectionRequest, open_chat_client, run_many
    settings = {"llm_base_url": sys.argv[1], "llm_model": "fake-model", "llmaug_cache_dir": sys.argv[2],
                "llm_concurrency": 1, "llm_max_retries": 0, "llm_timeout": 60}
    requests = [SelectionRequest(({"role": "user", "content": f"user {index}"},), ("A1", "B2"), 1) for index in range(8)]
    with open_chat_client(settings) as client:
        results = run_many(client, requests, "resume-v1")
    print(sum(result.valid for result in results))
""")


def test_killed_selection_run_resumes_from_the_cache(fake_server, tmp_path):
    args = [sys.executable, "-c", SELECTION_SCRIPT, fake_server.base_url, str(tmp_path / "cache")]
    kill_at_request(fake_server, 6, lambda body: chat_body('{"ids": ["B2"]}'), args)
    before = len(fake_server.requests)
    rerun = subprocess.run(args, env=python_env(), capture_output=True, timeout=120)
    assert rerun.returncode == 0 and rerun.stdout.decode().strip() == "8", rerun.stderr.decode()[-2000:]
    assert len(fake_server.requests) - before == 8 - 5  # 5 answered before the kill
    assert "calls/s" in rerun.stderr.decode() and "hits=5" in rerun.stderr.decode()  # the progress bar


# ------------------------------------------------------------------ many machines (Ray)

@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 worker CPUs, started in-process once for these tests."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH")]))
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", _temp_dir="/tmp/ray-llmstage-test")
    yield
    ray.shutdown()


DIE_MARKER_ENV = "LLMSTAGE_TEST_DIE_MARKER"


def dying_embed_shard(settings, texts):
    """The real shard worker, except that the worker holding "Product number 13" dies the first time."""
    from recbole_llmaug.llm.sharding import embed_shard

    marker = Path(settings["test_marker"])
    with open(Path(settings["test_marker"]).with_suffix(".log"), "a") as log:  # which shards ran
        log.write(texts[0] + "\n")
    if "Product number 13" in texts and not marker.exists():
        marker.write_text("died")
        os._exit(1)  # the worker process dies: no exception, no answer
    return embed_shard(settings, texts)


def test_sharded_augmentation_matches_local_and_a_dead_worker_costs_only_its_shard(ray_cluster, fake_server, tmp_path,
                                                                                   monkeypatch):
    from conftest import write_tiny_dataset
    from recbole_llmaug.augment import run_augmentor
    from recbole_llmaug.errors import ServiceError
    from recbole_llmaug.llm import sharding

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    fake_server.default = (200, embedding_reply, {}, 0.0)
    local_root, ray_root = tmp_path / "local", tmp_path / "ray"
    write_tiny_dataset(local_root)
    write_tiny_dataset(ray_root)
    run_augmentor("item_emb", aug_settings(local_root, fake_server.base_url))
    local_requests = len(fake_server.requests)

    settings = aug_settings(ray_root, fake_server.base_url, ray_address="local", augment_shard_size=6)
    manifest = run_augmentor("item_emb", settings)  # 20 texts: shards of 6, 6, 6, 2
    assert len(fake_server.requests) - local_requests == 7  # per shard: 2 + 2 + 2 + 1 batches of at most 4
    assert {request["authorization"] for request in fake_server.requests} == {"Bearer sk-test"}  # the key travelled
    folder = ray_root / "augmented" / "tiny"
    local = read_vectors(local_root / "augmented" / "tiny" / "tiny.itememb")
    sharded = read_vectors(folder / "tiny.itememb")
    assert sharded.keys() == local.keys()
    for item in local:
        np.testing.assert_allclose(sharded[item], local[item], rtol=1e-6)
    assert manifest["usage"]["embedded_now"] == 20 and not sharding.shard_folder(folder / "tiny.itememb").exists()

    # A worker dies: the other shards are kept, the rerun redoes that shard only.
    texts = [f"Product number {item}" for item in range(1, 21)]
    unique_settings = dict(settings, llmaug_cache_dir=str(tmp_path / "cache2"), test_marker=str(tmp_path / "died"))
    shard_dir = tmp_path / "shards"
    before = len(fake_server.requests)
    with pytest.raises(ServiceError, match=r"of 4 shards") as failure:
        sharding.run_sharded(dying_embed_shard, sorted(texts, key=len), unique_settings, shard_dir, {"k": 1}, "items")
    # the dying worker's shard fails; Ray may also fail another task leased to that worker
    failed = int(str(failure.value).split(" of 4 shards")[0].split()[-1])
    kept = sorted(int(path.name.split("-")[1]) for path in shard_dir.glob("shard-*.json"))
    assert failed >= 1 and len(kept) == 4 - failed and 2 not in kept  # the shard with "Product number 13"
    shards = [sorted(texts, key=len)[start:start + 6] for start in range(0, 20, 6)]
    first_run = len(fake_server.requests) - before
    ran_before = len((tmp_path / "died.log").read_text().splitlines())
    outputs = sharding.run_sharded(dying_embed_shard, sorted(texts, key=len), unique_settings, shard_dir, {"k": 1},
                                   "items")
    ran = (tmp_path / "died.log").read_text().splitlines()[ran_before:]
    missing = [index for index in range(4) if index not in kept]
    assert sorted(ran) == sorted(shards[index][0] for index in missing)  # the missing shards only
    redone = [request["body"]["input"] for request in fake_server.requests[before + first_run:]]
    assert sorted(text for batch in redone for text in batch) == sorted(t for index in missing for t in shards[index])
    assert sum(len(out["vectors"]) for out in outputs) == 20 and not shard_dir.exists()


def select_shard_on_another_machine(settings, requests, prompt_version):
    """The real selection worker with a cache of its own, as on another node."""
    from recbole_llmaug.llm.sharding import select_shard

    return select_shard(dict(settings, llmaug_cache_dir=settings["worker_cache"]), requests, prompt_version)


def test_sharded_selections_match_local_and_fill_the_driver_cache(ray_cluster, fake_server, settings, tmp_path):
    from recbole_llmaug.llm import sharding
    from recbole_llmaug.llm.selection import SelectionResult

    def reply(body):
        user = body["messages"][0]["content"]
        return chat_body(json.dumps({"ids": ["B2" if int(user.split()[1]) % 2 else "A1"]}))

    fake_server.default = (200, reply, {}, 0.0)
    requests = [SelectionRequest(({"role": "user", "content": f"user {index}"},), ("A1", "B2"), 1) for index in range(5)]
    sharded_settings = dict(settings, ray_address="local", augment_shard_size=2, worker_cache=str(tmp_path / "node2"))
    stats = CallStats()
    sharded = sharding._chat_sharded(select_shard_on_another_machine, requests, sharded_settings, "ray-v1",
                                     tmp_path / "sel_shards", "selections", SelectionResult, stats)
    assert [result.ids for result in sharded] == [["A1"], ["B2"], ["A1"], ["B2"], ["A1"]]
    assert stats.calls == 5 and stats.cache_hits == 0 and stats.prompt_tokens > 0  # the workers' counts
    assert len(fake_server.requests) == 5 and (tmp_path / "node2" / CHAT_CACHE_FILE).is_file()
    # the public entry, on the driver's cache: the workers' answers were copied there, so no call is made
    assert sharding.run_many_sharded(requests, sharded_settings, "ray-v1")[1].ids == ["B2"]
    assert len(fake_server.requests) == 5
    with open_chat_client(settings) as client:  # everything the workers answered is in the driver's cache
        again = run_many(client, requests, "ray-v1")
        assert client.stats.calls == 0 and [result.ids for result in again] == [result.ids for result in sharded]
