#!/usr/bin/env bash
# One entry point for the two README commands: `./run.sh demo` and `./run.sh test`.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

setup() {
    if [ ! -x .venv/bin/python ]; then
        "$PY" -m venv .venv
    fi
    if [ ! -f .venv/.setup-stamp ] || [ pyproject.toml -nt .venv/.setup-stamp ]; then
        .venv/bin/python -m pip install -q --upgrade pip
        # The CPU wheel first: an open torch range alone would pull a multi-GB CUDA build.
        .venv/bin/python -m pip install -q torch==2.13.0
        .venv/bin/python -m pip install -q -e ".[dev,ray]"
        touch .venv/.setup-stamp
    fi
}

case "${1:-}" in
    setup) setup ;;
    demo)
        setup
        shift
        .venv/bin/python solve.py his_opt/data/examples/users.csv --out out/report.xlsx --plan out/plan.json "$@"
        ;;
    test)
        setup
        shift
        .venv/bin/python -m pytest -q "$@"
        ;;
    *)
        echo "usage: ./run.sh {setup|demo|test} [args...]" >&2
        exit 2
        ;;
esac
