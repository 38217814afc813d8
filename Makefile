# corosio_py developer tasks.  Every target bootstraps .venv on first use, so
# `make test` works on a fresh clone by itself.

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Scale factor for tests/stress (1 = full run; CI uses 0.2).
COROSIO_STRESS_SCALE ?= 1

.PHONY: install test stress test-ft lint bench bench-ft bench-quick demo clean

install: $(STAMP)

# Editable install with test/lint tooling and the benchmark comparison
# frameworks (uvloop, trio, matplotlib, all binary wheels).  Re-runs whenever
# pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q -e '.[dev,bench]'
	touch $@

test: $(STAMP)
	$(VPY) -m pytest tests/unit -q -p no:cacheprovider

stress: $(STAMP)
	COROSIO_STRESS_SCALE=$(COROSIO_STRESS_SCALE) $(VPY) -m pytest tests/stress -q -s

# Free-threaded CPython 3.13t: tools/build_freethreaded.sh builds it once and
# caches it (and a venv with the test tools) outside the checkout, in
# COROSIO_FT_PREFIX (default ~/.cache/corosio_py/python3.13t), printing the
# venv's interpreter.  The checkout's package runs from PYTHONPATH (no
# install): the unit suite, then the stress suite at COROSIO_FT_STRESS_SCALE
# (both run; either failing fails the target).
COROSIO_FT_STRESS_SCALE ?= 0.2

test-ft:
	@ftpy="$$(tools/build_freethreaded.sh)" || exit 1; \
	echo "== free-threaded: $$ftpy ($$($$ftpy -c 'import sys; print(sys.version.split()[0], "GIL enabled:", sys._is_gil_enabled())'))"; \
	rc=0; \
	echo "== free-threaded: unit tests"; \
	PYTHONPATH=. $$ftpy -m pytest tests/unit -q -p no:cacheprovider || rc=1; \
	echo "== free-threaded: stress tests (COROSIO_STRESS_SCALE=$(COROSIO_FT_STRESS_SCALE))"; \
	PYTHONPATH=. COROSIO_STRESS_SCALE=$(COROSIO_FT_STRESS_SCALE) \
		$$ftpy -m pytest tests/stress -q -s -p no:cacheprovider || rc=1; \
	[ "$$rc" = 0 ] || echo "== free-threaded: FAILED (see above)" >&2; \
	exit $$rc

# mypy also checks the package as macOS and FreeBSD see it (no epoll names
# in select and os there), so the kqueue path stays importable off Linux.
lint: $(STAMP)
	$(VENV)/bin/ruff check corosio_py tests tools
	$(VENV)/bin/mypy --strict corosio_py
	$(VENV)/bin/mypy --strict --platform darwin corosio_py
	$(VENV)/bin/mypy --strict --platform freebsd corosio_py
	$(VENV)/bin/mypy tests

# http_wrk needs wrk: as root with apt-get, try to install it when missing
# (never fails: without wrk the workload is skipped with a message).
bench: $(STAMP)
	@if ! command -v wrk >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "wrk is missing: apt-get install -y wrk"; \
		apt-get install -y -q wrk >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wrk >/dev/null 2>&1; } \
		|| echo "could not install wrk: the http_wrk workload will be skipped"; \
	fi
	$(VPY) -m tools.bench

# What threads buy on the free-threaded build: the scaling workloads on the
# default backend, corosio_py and the stdlib peers (uvloop and trio have no
# free-threaded wheels), into bench-results/free-threaded/.  Five reps: the
# 2-thread HTTP figure swings by +-25 % run to run on these VMs.
FT_BENCH_WORKLOADS := post_throughput,mt_scaling,mt_scaling_20us,gil_release,http_wrk
FT_BENCH_IMPLS := corosio_py,corosio_py_hint1,corosio_py_1thread,corosio_py_2threads,asyncio,asyncio_streams,threadpool_2,asyncio_to_thread,serial
bench-ft:
	@ftpy="$$(tools/build_freethreaded.sh)" || exit 1; \
	backend="$$(PYTHONPATH=. $$ftpy -c 'import corosio_py; print(corosio_py.available_backends()[0])')"; \
	PYTHONPATH=. $$ftpy -m tools.bench --workload $(FT_BENCH_WORKLOADS) --impl $(FT_BENCH_IMPLS) \
		--backend "$$backend" --reps 5 --out bench-results/free-threaded

bench-quick: $(STAMP)
	$(VPY) -m tools.bench --quick

demo: $(STAMP)
	$(VPY) -m corosio_py.examples.demo $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
