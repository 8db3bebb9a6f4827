# Set-up and entry points. `make test` and `make demo` work on a fresh machine:
# they create .venv and install requirements.txt on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test demo clean-demo

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	bash scripts/demo.sh $(abspath $(PY))

clean-demo:
	rm -rf demo
