#!/usr/bin/env bash
# The test command: lint, then the unit suite against rsl-rl-lib 5.5.1 (Isaac Lab 3.0) and 5.4.2 (mjlab 1.6).
# Creates its own virtual environments under .venvs/ (reused when pyproject.toml and constraints.txt are unchanged).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$REPO"
ensure_venv .venvs/rsl551 "rsl-rl-lib==5.5.1"
ensure_venv .venvs/rsl542 "rsl-rl-lib==5.4.2"
echo "[dagmix] ruff"
.venvs/rsl551/bin/ruff check .
.venvs/rsl551/bin/ruff format --check .
echo "[dagmix] pytest, rsl-rl-lib 5.5.1"
.venvs/rsl551/bin/python -m pytest -q -p no:cacheprovider "$@"
echo "[dagmix] pytest, rsl-rl-lib 5.4.2"
.venvs/rsl542/bin/python -m pytest -q -p no:cacheprovider "$@"
