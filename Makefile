# Two commands for a fresh machine: `make demo` and `make test`. Both set up .venv/ first
# (torch, the OpenMMLab stack, mmcv built once and cached in ~/.cache/mmsase).
VENV   ?= .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.mmsase-ready

.PHONY: setup demo demo-detection demo-ean compare compare-cluttered sanity test test-fast test-slow \
	bench clean

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

# cluttered digits: a robust search (its genotype chosen by perturbation), 3 random genotypes,
# then plain, SE, CBAM, ECA, the paper's SASE, the searched and the random ones, 3 seeds each
CLUTTERED := work_dirs/cluttered
compare-cluttered: $(STAMP)
	$(PYTHON) tools/train.py configs/demo/sase_search_resnet20_cluttered_digits_robust.py \
		--work-dir $(CLUTTERED)/search
	$(PYTHON) tools/derive_genotype.py $(CLUTTERED)/search/epoch_12.pth --method pt --max-batches 4 \
		--config configs/demo/sase_search_resnet20_cluttered_digits_robust.py \
		--out $(CLUTTERED)/searched.json
	for seed in 0 1 2; do $(PYTHON) tools/random_genotype.py --seed $$seed \
		--out $(CLUTTERED)/random$$seed.json; done
	$(PYTHON) tools/analysis/compare_attention.py configs/demo/cifar_resnet20_cluttered_digits.py \
		--blocks plain se cbam eca sase searched=$(CLUTTERED)/searched.json \
		random0=$(CLUTTERED)/random0.json random1=$(CLUTTERED)/random1.json \
		random2=$(CLUTTERED)/random2.json --seeds 0 1 2 --work-dir $(CLUTTERED)/compare

# the planted-operation benchmarks of the search, recommended method, 3 seeds (about 5 min)
sanity: $(STAMP)
	$(PYTHON) tools/analysis/search_sanity.py --quick

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
