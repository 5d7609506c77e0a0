#!/usr/bin/env bash
# The main job: creates its own virtual environment, then runs a two-stage distillation of the shipped quadcopter
# teacher into a GRU student on the CPU and prints the eval table (extra arguments go to `dagmix distill`).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$REPO"
bin="$(ensure_venv rsl551 "rsl-rl-lib==5.5.1" dev,gymnasium)"
exec "$bin/python" -P -m dagmix.cli distill --task quadcopter "$@"  # -P: the clone's folders are not top-level modules
