# smeflow — two commands on a fresh Debian machine: `make demo` and `make test`.
# Everything they need is installed here: Debian packages (when root), the venv, the package.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.smeflow-installed
# check:debian-package pairs the project needs from Debian; a check is a command on PATH or
# an absolute path. Debian's PoCL: the wheel's PoCL (LLVM 14) cannot compile for recent CPUs.
# PostgreSQL: the catalog-server tests start a throwaway cluster with its initdb/postgres.
# Redis: bluesky-queueserver keeps its plan queue there (`smeflow queue`, the queue tests).
# gcc: `smeflow demo --prepare` links the numba functions it builds ahead of time (sme.native).
# hdf5-tools: HDF5's own h5dump and h5clear (1.10) read and close frame files in the tests.
DEBIAN_TOOLS := ghdl:ghdl yosys:yosys dot:graphviz /etc/OpenCL/vendors/pocl.icd:pocl-opencl-icd \
                /usr/lib/postgresql:postgresql redis-server:redis-server gcc:gcc \
                h5dump:hdf5-tools

.PHONY: all setup system-deps demo test check lint typecheck bench clean

all: test

system-deps:
	@missing=""; \
	for pair in $(DEBIAN_TOOLS); do \
	  tool=$${pair%%:*}; pkg=$${pair##*:}; \
	  case $$tool in \
	    /*) [ -e $$tool ] || missing="$$missing $$pkg";; \
	    *) command -v $$tool >/dev/null 2>&1 || missing="$$missing $$pkg";; \
	  esac; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing; \
	  else \
	    echo "missing Debian packages:$$missing — run: sudo apt-get install -y$$missing"; \
	  fi; \
	fi

$(PY):
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = "0" ]; then apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3-venv && \
	    $(PYTHON) -m venv $(VENV); \
	  else echo "run: sudo apt-get install -y python3-venv"; exit 1; fi; }

# The demo's compiled artefacts (firmware, models, OpenCL kernels) are built once here, so
# that the first `make demo` finds them cached; a failure there does not fail the install.
$(STAMP): pyproject.toml Makefile | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench]'
	# The checkout itself on sys.path (as a path entry, not only setuptools' editable finder,
	# which Python asks after its own): a user's folder named plans/, sme/, analysis/... in the
	# working folder is then a namespace portion that our regular packages win over
	echo '$(CURDIR)' > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/smeflow_checkout.pth"
	# JupyterLab brings rfc3987-syntax, which jsonschema imports with event-model and which
	# builds a Lark grammar at import: 1-3 s more for every smeflow command, test subprocess
	# and Dask worker, for an "iri" format check nothing here uses (see the README)
	$(PY) -m pip uninstall -y -q rfc3987-syntax
	# pyopencl[pocl] brings the wheel's PoCL (LLVM 14, too old for recent CPUs): with Debian's
	# PoCL installed it is never chosen, but every OpenCL process loads it (+21 MB resident)
	if [ -e /etc/OpenCL/vendors/pocl.icd ]; then $(PY) -m pip uninstall -y -q pocl-binary-distribution; fi
	-$(VENV)/bin/smeflow demo --prepare
	@touch $(STAMP)

setup: system-deps $(STAMP)

demo: setup
	$(VENV)/bin/smeflow demo

lint: setup
	$(VENV)/bin/ruff check sme fpga geometry devices dataflow plans analysis tests benchmarks

typecheck: setup
	$(VENV)/bin/mypy

check: lint typecheck

# pytest exits 5 when it collected no test: that is a failure here, as every other non-zero.
# The suite runs on every core (pytest-xdist); tests use their own temp folders and free ports.
# --durations: the slowest tests in every log, to see where the suite's time goes (target < 25 min).
# PYTHONDONTWRITEBYTECODE emptied: with it set, each of the suite's Python processes (its
# workers, the CLI, cocotb and Dask subprocesses) compiled the project's modules again
# and pytest rewrote the tests' asserts again (7 s of CPU a worker's collection alone).
PYTEST_WORKERS ?= auto
test: setup
	PYTHONDONTWRITEBYTECODE= $(VENV)/bin/pytest -q -n $(PYTEST_WORKERS) --durations=30

bench: setup
	$(PY) benchmarks/sim_speed.py
	$(PY) benchmarks/firmware.py
	$(PY) benchmarks/azint.py
	$(PY) benchmarks/fbp.py
	$(PY) benchmarks/h5_layout.py
	$(PY) benchmarks/acquisition.py
	$(PY) benchmarks/scale.py
	$(PY) benchmarks/faults.py
	$(PY) benchmarks/endtoend.py

clean:
	rm -rf $(VENV) out build smeflow-data .pytest_cache .mypy_cache .ruff_cache .hypothesis
