"""Child process of :class:`recbole_llmaug.llm.local_server.LocalLlamaServer`.

Run by file path with no package imports, so it starts in about a second: load the GGUF into an
xllamacpp server on a free loopback port, print the address, and serve until stdin closes.
"""

import argparse
import sys
from pathlib import Path

CONTEXT_PER_SLOT = 2048
# llama.cpp's host-memory prompt cache (--cache-ram, 8 GiB by default) keeps the KV state of prompts that
# left a slot. Our requests reuse the prefix they share through their own slot (``cache_prompt``), so it only
# grows: on the LLMRec Beauty pass the server reached 16 GB RSS in an hour on a 24 GB machine. 0 turns it off.
PROMPT_CACHE_RAM_MIB = 0
READY_PREFIX = "LISTENING "


def server_params(args):
    """The xllamacpp server's parameters for ``args`` (model, threads, parallel slots)."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {Path(args.model).stem}
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # a free port, chosen by the OS
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.n_parallel = args.parallel
    params.n_ctx = CONTEXT_PER_SLOT * args.parallel
    params.cache_ram_mib = PROMPT_CACHE_RAM_MIB
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args()

    import xllamacpp

    server = xllamacpp.Server(server_params(args))
    print(READY_PREFIX + server.listening_address, flush=True)
    sys.stdin.read()  # EOF: the parent stopped us or died
    del server


if __name__ == "__main__":
    main()
