# Two commands for a fresh machine: `make demo` and `make test`. Both set up .venv/ first
# (torch, the OpenMMLab stack, mmcv built once and cached in ~/.cache/mmsase).
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.mmsase-ready

.PHONY: setup demo demo-detection demo-ean compare test test-fast test-slow bench clean

$(STAMP): tools/setup_env.sh setup.py requirements.txt requirements/runtime.txt requirements/tests.txt \
		requirements/optional.txt
	bash tools/setup_env.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PYTHON) tools/demo.py

demo-detection: $(STAMP)
	$(PYTHON) tools/demo.py --only detection

demo-ean: $(STAMP)
	$(PYTHON) tools/demo.py --only ean

# plain vs SE vs SASE on the digits, 3 seeds each, with 95 % intervals (about 10 min on 2 cores)
compare: $(STAMP)
	$(PYTHON) tools/analysis/compare_attention.py

test: $(STAMP)
	$(PYTHON) -m pytest tests

test-fast: $(STAMP)
	$(PYTHON) -m pytest tests -m "not slow"

test-slow: $(STAMP)
	$(PYTHON) -m pytest tests -m slow

bench: $(STAMP)
	$(PYTHON) tools/analysis/benchmark.py

clean:
	rm -rf work_dirs build dist *.egg-info mmsase/.mim
