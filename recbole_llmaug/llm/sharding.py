"""Many machines: an augmentation's embeddings or LLM requests sharded over Ray tasks.

(In the LLM layer, not in ``augment/``, so that pickers and every augmentor output can use it.)

With ``ray_address`` set (``--ray-address=...`` on the command line, as for ``--tune``), the work of
an output is cut into shards of ``augment_shard_size`` texts or requests, in a fixed order. Each shard
is one Ray task that calls the configured endpoint (``llm_base_url``) or, when none is configured, its
own embedded llama.cpp server / local embedding model, through the same layer as a local run (cache,
retries, validation). Results come back to the driver, which

* stores each finished shard atomically under ``.<output>.shards/`` next to the output file,
* copies the worker's new cache entries into its own cache (so the driver's cache holds every answer
  even when the workers' caches are on other machines), and
* when every shard is in, returns the results in order and removes the shard folder.

A worker that dies (or a task that fails) costs only its shard: the others are kept, the run ends
with a :class:`~recbole_llmaug.errors.ServiceError` naming the missing shards, and the same command
again redoes only those (and inside them, whatever the cache already answered is not asked again).

``ray_address``: ``local`` starts Ray on this machine; ``auto``, ``<head>:6379`` or
``ray://<head>:10001`` join a cluster (this package is shipped to the workers; the data is read by
the driver only, so workers need neither the dataset nor this checkout). A Ray already initialised in
this process (a test's ``ray.init``) is used as it is.
"""

import base64
import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
from tqdm import tqdm

from recbole_llmaug.augment.atomic import write_text_atomic
from recbole_llmaug.defaults import setting
from recbole_llmaug.errors import ServiceError, UserError
from recbole_llmaug.llm.cache import SqliteCache, stable_hash
from recbole_llmaug.llm.chat import CHAT_CACHE_FILE, CallStats
from recbole_llmaug.llm.embeddings import EMBEDDING_CACHE_FILE, EmbeddingRun, _text_key
from recbole_llmaug.llm.settings import EmbeddingSettings, LLMSettings

logger = logging.getLogger(__name__)

SHARD_FORMAT = "shard-v1"
STAT_NAMES = tuple(CallStats().as_dict())  # the counters a shard reports, summed over the shards


# ---------------------------------------------------------------- Ray

def connect(address: str) -> None:
    """Join the cluster at ``address`` (or start Ray here for ``local``) unless Ray already runs in this process."""
    import ray

    if ray.is_initialized():
        return
    import recbole_llmaug

    package_dir = str(Path(recbole_llmaug.__file__).resolve().parent)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        if address == "local":
            # Local workers inherit this environment: make this very package importable for them.
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(package_dir).parent),
                                                                     os.environ.get("PYTHONPATH")]))
            ray.init(include_dashboard=False, logging_level=logging.WARNING)
        else:
            ray.init(address=address, runtime_env={"py_modules": [package_dir]}, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise UserError(
            f"Could not connect to the Ray cluster at '{address}': {error}. Check --ray-address / ray_address "
            "('local' to start Ray on this machine, 'auto' on a cluster node, '<head-ip>:6379' or "
            "'ray://<head-ip>:10001')."
        ) from None


def worker_settings(settings: Mapping) -> dict:
    """The settings a task runs with: no Ray inside a task, and threads = the CPUs Ray reserved for it."""
    cpus = int(setting(settings, "augment_cpus_per_task"))
    out = dict(settings, ray_address=None)
    for key in ("llm_threads", "embedding_threads"):
        if setting(settings, key) is None:
            out[key] = cpus
    return out


# ---------------------------------------------------------------- workers (run inside Ray tasks)

class RecordingCache:
    """A cache that also remembers what was written to it, so the driver can copy new answers into its own."""

    def __init__(self, cache):
        self._cache = cache
        self.written = []

    def get(self, key):
        return self._cache.get(key)

    def put(self, key, value):
        self.written.append((key, value))
        self._cache.put(key, value)


def task_environment(settings: Mapping) -> dict:
    """Environment variables of every task: no progress bars (the driver shows one for all shards), and
    the endpoint's key from the variable ``llm_api_key_env`` names, which workers on other machines lack."""
    env = {"TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    llm = LLMSettings.from_settings(settings)
    if llm.api_key():
        env[llm.api_key_env] = llm.api_key()
    return env


def embed_shard(settings: Mapping, texts: Sequence[str]) -> dict:
    """Raw (unnormalised) vectors of ``texts``, as cached: ``{"vectors": [base64 float32], "stats": {...}}``."""
    from recbole_llmaug.llm.embeddings import embed_texts

    embedding = dataclasses.replace(EmbeddingSettings.from_settings(settings), normalize=False)
    run = embed_texts(list(texts), embedding, settings=settings, desc="shard")
    stats = dict(run.stats, cache_hits=run.cache_hits)
    return {"vectors": [base64.b64encode(vector.astype(np.float32).tobytes()).decode("ascii") for vector in run.vectors],
            "stats": stats}


def _chat_shard(settings: Mapping, requests: Sequence, prompt_version: str, run) -> dict:
    from recbole_llmaug.llm.chat import open_chat_client

    with open_chat_client(settings) as client:
        client.cache = recorder = RecordingCache(client.cache)
        results = run(client, list(requests), prompt_version, desc="shard")
        return {"results": [dataclasses.asdict(result) for result in results],
                "cache": [(key, base64.b64encode(value).decode("ascii")) for key, value in recorder.written],
                "stats": client.stats.as_dict()}


def select_shard(settings: Mapping, requests: Sequence, prompt_version: str) -> dict:
    """:func:`~recbole_llmaug.llm.selection.run_many` on one shard of selection requests."""
    from recbole_llmaug.llm.selection import run_many

    return _chat_shard(settings, requests, prompt_version, run_many)


def json_shard(settings: Mapping, requests: Sequence, prompt_version: str) -> dict:
    """:func:`~recbole_llmaug.llm.structured.run_many_json` on one shard of object requests."""
    from recbole_llmaug.llm.structured import run_many_json

    return _chat_shard(settings, requests, prompt_version, run_many_json)


# ---------------------------------------------------------------- driver

def shard_folder(output: Path) -> Path:
    return Path(output).with_name(f".{Path(output).name}.shards")


def _shard_name(index: int, identity: dict, payloads: Sequence) -> str:
    digest = stable_hash({"format": SHARD_FORMAT, "identity": identity, "payloads": [repr(p) for p in payloads]})
    return f"shard-{index:05d}-{digest[:16]}.json"


def run_sharded(work: Callable, payloads: Sequence, settings: Mapping, folder: Path, identity: dict,
                desc: str, args: tuple = ()) -> List[dict]:
    """``work(worker_settings, shard, *args)`` for every shard of ``payloads`` on Ray; the shards' outputs in order.

    ``identity``: what makes a shard's answer what it is besides its payloads (model, prompt version...);
    a kept shard is reused only under the same identity and payloads. ``work`` returns a JSON-able dict
    with ``stats`` (and ``cache``: entries for the driver's chat cache). Raises :class:`ServiceError`
    when some shards failed, after keeping the others.
    """
    import ray

    size = int(setting(settings, "augment_shard_size"))
    shards = [list(payloads[start:start + size]) for start in range(0, len(payloads), size)]
    names = [_shard_name(index, identity, shard) for index, shard in enumerate(shards)]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    done: Dict[int, dict] = {}
    for index, name in enumerate(names):
        try:
            done[index] = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
    stats = CallStats()
    failures = {}
    missing = [index for index in range(len(shards)) if index not in done]
    if missing:
        connect(str(setting(settings, "ray_address")))
        cpus = int(setting(settings, "augment_cpus_per_task"))
        task = ray.remote(work).options(num_cpus=cpus, max_retries=0,
                                        runtime_env={"env_vars": task_environment(settings)})
        sent = worker_settings(settings)
        pending = {task.remote(sent, shards[index], *args): index for index in missing}
        chat_cache = None
        with tqdm(total=len(payloads), initial=sum(len(shards[index]) for index in done), desc=desc,
                  unit="req", dynamic_ncols=True) as bar:
            bar.set_postfix(shards=f"{len(done)}/{len(shards)}", refresh=False)
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(ready[0])
                try:
                    result = ray.get(ready[0])
                except ray.exceptions.RayError as error:
                    failures[index] = " ".join(str(error).split())[:300]
                    logger.warning("shard %d of %d failed: %s", index, len(shards), failures[index])
                    continue
                if result.get("cache"):
                    if chat_cache is None:
                        chat_cache = SqliteCache(LLMSettings.from_settings(settings).cache_dir / CHAT_CACHE_FILE, "chat")
                    chat_cache.put_many((key, base64.b64decode(value)) for key, value in result["cache"])
                write_text_atomic(folder / names[index], json.dumps(result))
                done[index] = result
                stats.add(**{name: result.get("stats", {}).get(name, 0) for name in STAT_NAMES})
                bar.update(len(shards[index]))
                bar.set_postfix(dict(stats.postfix(elapsed=bar.format_dict.get("elapsed") or None),
                                     shards=f"{len(done)}/{len(shards)}"), refresh=False)
        if chat_cache is not None:
            chat_cache.close()
    if failures:
        first = next(iter(failures.items()))
        raise ServiceError(
            f"{len(failures)} of {len(shards)} shards of '{desc}' failed on the Ray cluster (shard {first[0]}: "
            f"{first[1]}). Kept: the {len(done)} finished shards in {folder} and every answer in the cache. Fix the "
            "cause (a worker that died, the endpoint) and rerun the same command: only the missing shards are redone."
        )
    outputs = [done[index] for index in range(len(shards))]
    shutil.rmtree(folder, ignore_errors=True)
    return outputs


def shard_totals(outputs) -> dict:
    """The workers' counts (``STAT_NAMES``) summed over the shards' outputs."""
    return {name: sum(out.get("stats", {}).get(name, 0) for out in outputs) for name in STAT_NAMES}


def embed_texts_sharded(texts: Sequence[str], settings: Mapping, output: Path, desc: str = "embedding") -> EmbeddingRun:
    """:func:`~recbole_llmaug.llm.embeddings.embed_texts` with the distinct texts sharded over Ray tasks.

    Texts are sorted by length before sharding (each batch pads little) and every returned vector is
    also put into the driver's embedding cache. The result is what ``embed_texts`` gives.
    """
    started = time.perf_counter()
    embedding = EmbeddingSettings.from_settings(settings)
    unique = sorted(dict.fromkeys(texts), key=len)
    identity = {"kind": "embed", "backend": embedding.backend, "model": embedding.model}
    outputs = run_sharded(embed_shard, unique, settings, shard_folder(output), identity, desc)
    vectors = {}
    for shard_texts, out in zip([unique[start:start + int(setting(settings, "augment_shard_size"))]
                                 for start in range(0, len(unique), int(setting(settings, "augment_shard_size")))],
                                outputs):
        for text, encoded in zip(shard_texts, out["vectors"]):
            vectors[text] = np.frombuffer(base64.b64decode(encoded), dtype=np.float32)
    cache = SqliteCache(embedding.cache_dir / EMBEDDING_CACHE_FILE, "embeddings")
    try:
        cache.put_many((_text_key(embedding.backend, embedding.model, text), vector.tobytes())
                       for text, vector in vectors.items())
    finally:
        cache.close()
    matrix = np.stack([vectors[text] for text in texts]).astype(np.float32)
    if embedding.normalize and len(matrix):
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = matrix / np.where(norms > 0, norms, 1.0)
    totals = shard_totals(outputs)
    hits = totals.pop("cache_hits")
    return EmbeddingRun(vectors=matrix, texts=len(texts), unique_texts=len(unique), embedded=len(unique) - hits,
                        cache_hits=hits, wall_time_s=time.perf_counter() - started, stats=totals)


def _chat_sharded(work, requests: Sequence, settings: Mapping, prompt_version: str, folder, desc: str,
                  result_type, stats: Optional[CallStats] = None) -> list:
    llm = LLMSettings.from_settings(settings)
    identity = {"kind": work.__name__, "base_url": llm.base_url, "model": llm.model, "prompt_version": prompt_version,
                "sampling": [llm.temperature, llm.top_p, llm.max_tokens, llm.selection_max_tokens, llm.selection_format]}
    if folder is None:  # one folder per request set, stable across reruns of the same work
        folder = llm.cache_dir / "shards" / stable_hash({"identity": identity,
                                                         "requests": [repr(request) for request in requests]})[:16]
    outputs = run_sharded(work, list(requests), settings, folder, identity, desc, args=(prompt_version,))
    if stats is not None:  # the workers' own counts (calls, correction rounds, tokens), as a local client keeps them
        stats.add(**shard_totals(outputs))
    return [result_type(**result) for out in outputs for result in out["results"]]


def run_many_sharded(requests: Sequence, settings: Mapping, prompt_version: str, folder: Optional[Path] = None,
                     desc: str = "LLM selections") -> list:
    """:func:`~recbole_llmaug.llm.selection.run_many` over Ray tasks (``SelectionResult`` per request, in order).

    ``folder`` keeps finished shards until all are in (default: under the cache folder, one per request set)."""
    from recbole_llmaug.llm.selection import SelectionResult

    return _chat_sharded(select_shard, requests, settings, prompt_version, folder, desc, SelectionResult)


def run_many_json_sharded(requests: Sequence, settings: Mapping, prompt_version: str, folder: Optional[Path] = None,
                          desc: str = "LLM objects", stats: Optional[CallStats] = None) -> list:
    """:func:`~recbole_llmaug.llm.structured.run_many_json` over Ray tasks (``JsonResult`` per request, in order);
    the workers' counts are added to ``stats`` when given."""
    from recbole_llmaug.llm.structured import JsonResult

    return _chat_sharded(json_shard, requests, settings, prompt_version, folder, desc, JsonResult, stats)
