# Two commands: `make run` (set up, build the user programs, boot hello) and
# `make test`. Both create the virtual environment they need.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYNOVA := $(VENV)/bin/pynova
STAMP  := $(VENV)/.installed-stamp
# pynova's patched libunicorn (native/unicorn/): built once into the venv,
# loaded in preference to the wheel's. A failed build leaves the wheel's in
# use and says so in one line; `make libunicorn` tries again.
UNICORN := $(VENV)/lib/pynova-unicorn/.stamp

.PHONY: run test examples bench lint clean readme libunicorn

# "compat" editable mode puts the tree on sys.path with a .pth file: no
# import hook to pay for on every run. Should setuptools drop it, fall back
# to a plain editable install.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat \
	  || $(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(UNICORN): $(STAMP) native/unicorn/build.py native/unicorn/pynova.patch
	$(PY) native/unicorn/build.py --prefix $(VENV)
	@touch $@

libunicorn: $(STAMP)
	rm -f $(UNICORN)
	$(MAKE) $(UNICORN)

# Byte-compile pynova once: with PYTHONDONTWRITEBYTECODE set (as on our CI
# machines) every `pynova run` would otherwise compile the kernel again.
examples: $(STAMP) $(UNICORN)
	$(PY) -m compileall -q pynova
	$(PY) -m pynova.toolchain

# hello returns from main into the seed's ud2: pynova reports the Invalid
# Opcode exception and exits with 132 (128 + SIGILL), as docs/ABI.md says.
run: examples
	$(PYNOVA) run example:hello || [ $$? -eq 132 ]

# The README's samples are real output: run their commands again and
# rewrite them (tests/test_readme.py fails when one is stale).
readme: examples
	$(PY) tests/readme_samples.py

test: examples lint
	@command -v gdb >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq gdb) \
	  || echo "warning: gdb is missing and could not be installed; gdb tests will fail"
	$(PY) -m pytest -n 2 tests

bench: examples
	$(PY) benchmarks/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check pynova tests benchmarks native
	$(VENV)/bin/mypy --ignore-missing-imports pynova

clean:
	rm -rf $(VENV) build *.egg-info
