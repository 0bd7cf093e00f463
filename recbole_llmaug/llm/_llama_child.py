"""Child process of :class:`recbole_llmaug.llm.local_server.LocalLlamaServer`.

Run by file path with no package imports, so it starts in about a second: load the GGUF into an
xllamacpp server on a free loopback port, print the address, and serve until stdin closes.
"""

import argparse
import sys
from pathlib import Path

CONTEXT_PER_SLOT = 2048
READY_PREFIX = "LISTENING "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args()

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
    server = xllamacpp.Server(params)
    print(READY_PREFIX + server.listening_address, flush=True)
    sys.stdin.read()  # EOF: the parent stopped us or died
    del server


if __name__ == "__main__":
    main()
