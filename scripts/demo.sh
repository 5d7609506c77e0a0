#!/usr/bin/env bash
# The main job: creates its own virtual environment, then runs `dagmix demo` (extra arguments are passed on).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$REPO"
ensure_venv .venvs/rsl551 "rsl-rl-lib==5.5.1"
exec .venvs/rsl551/bin/dagmix demo "$@"
