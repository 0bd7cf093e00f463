"""The embedded default: the real llama.cpp server (xllamacpp) with the bundled SmolLM2-135M.

The server is started once for the module and asked only a few short questions; SmolLM2 is weak,
so these tests check plumbing (schema-constrained answers, cache, clean shutdown), not quality.
"""

import urllib.error
import urllib.request

import pytest

from recbole_llmaug.llm import SelectionRequest, open_chat_client, run_many, select
from recbole_llmaug.llm.local_server import LocalLlamaServer, bundled_gguf_path

CANDIDATES = ["A1", "B2", "C3", "D4"]
MESSAGES = [
    {"role": "system", "content": "You recommend beauty products."},
    {"role": "user", "content": "The customer bought a red lipstick and a lip liner. "
                                "Candidates: A1 = lip gloss, B2 = hammer, C3 = socks, D4 = mascara."},
]


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return {"llmaug_cache_dir": str(tmp_path_factory.mktemp("llm_cache")), "llm_max_tokens": 32,
            "llm_concurrency": 2, "llm_base_url": None}


@pytest.fixture(scope="module")
def client(settings):
    with open_chat_client(settings) as chat_client:
        yield chat_client


@pytest.fixture(autouse=True)
def no_endpoint_from_environment(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def test_embedded_server_answers_schema_constrained_selections(client):
    assert client.base_url.startswith("http://127.0.0.1:")
    assert client.model == bundled_gguf_path().stem
    one = select(client, MESSAGES, CANDIDATES, 1, "local-test-v1")
    assert one.valid and one.ids[0] in CANDIDATES and not one.cached
    requests = [SelectionRequest(tuple(MESSAGES), tuple(CANDIDATES), 2),
                SelectionRequest(tuple(MESSAGES[1:]), tuple(CANDIDATES[:3]), 1)]
    two, three = run_many(client, requests, "local-test-v1")
    assert two.valid and len(two.ids) == 2 and set(two.ids) <= set(CANDIDATES)
    assert three.valid and three.ids[0] in CANDIDATES[:3]
    assert client.stats.calls >= 3 and client.stats.prompt_tokens > 0


def test_rerun_is_served_from_the_cache(client, settings):
    select(client, MESSAGES, CANDIDATES, 1, "local-test-v1")
    with open_chat_client(settings) as second:
        again = select(second, MESSAGES, CANDIDATES, 1, "local-test-v1")
        assert again.cached and second.stats.calls == 0 and second.stats.cache_hits == 1


def test_server_stops_when_the_block_ends(tmp_path):
    with LocalLlamaServer(bundled_gguf_path(), threads=1, log_file=tmp_path / "server.log") as server:
        address = server.base_url[: -len("/v1")]
        with urllib.request.urlopen(address + "/health", timeout=5) as response:
            assert response.status == 200
        process = server._process
    assert process.poll() is not None
    with pytest.raises((urllib.error.URLError, OSError)):
        urllib.request.urlopen(address + "/health", timeout=2)


def test_server_keeps_no_host_prompt_cache():
    """llama.cpp's host-memory prompt cache (8 GiB by default) only grows under our requests, which reuse
    their prefix through their own slot: it took the server to 16 GB on the LLMRec Beauty pass. The child
    turns it off and sizes the context per slot."""
    import argparse
    import importlib.util

    from recbole_llmaug.llm import local_server

    spec = importlib.util.spec_from_file_location("llama_child", local_server.CHILD_SCRIPT)
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)
    params = child.server_params(argparse.Namespace(model=str(bundled_gguf_path()), threads=1, parallel=3))
    assert params.cache_ram_mib == 0
    assert (params.n_parallel, params.n_ctx) == (3, 3 * child.CONTEXT_PER_SLOT)
