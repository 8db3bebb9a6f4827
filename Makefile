# Set-up and entry points. `make test`, `make demo` and `make study` work on a fresh machine:
# they create .venv and install requirements.txt on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test demo study clean-demo

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 tests

demo: $(STAMP)
	bash scripts/demo.sh $(abspath $(PY))

# The paper's analysis on real photographs (scripts/real_study.sh, docs/real_study.md);
# STUDY_SMOKE=1 make study runs every step at toy size.
study: $(STAMP)
	PYTHON=$(abspath $(PY)) bash scripts/real_study.sh

clean-demo:
	rm -rf demo
