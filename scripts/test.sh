#!/usr/bin/env bash
# The test command: lint, the whole suite against rsl-rl-lib 5.5.1 (Isaac Lab 3.0) and 5.4.2 (mjlab 1.6, with the
# mjlab end-to-end test), then the rsl_rl integration tests against 4.0.1, 3.3.0 and 3.0.1 (Isaac Lab 2.3).
# Each version has its own cached virtual environment under ~/.cache/dagmix/venvs (see scripts/_venv.sh); extra
# arguments go to the two full pytest runs. DAGMIX_MATRIX=0 skips the 4.x/3.x runs (a quick local check).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$REPO"
# The tests that exercise rsl_rl's algorithm and runners; they run on every supported rsl-rl-lib.
CORE_TESTS=(tests/test_mixing_distillation.py tests/test_compat.py tests/test_gymnasium_adapter.py tests/test_gymnasium_pendulum.py)

run() {  # NAME RSL_RL_SPEC EXTRAS PYTEST_ARGS...
  local name="$1" spec="$2" extras="$3" bin t0
  shift 3
  t0=$SECONDS
  bin="$(ensure_venv "$name" "$spec" "$extras")"
  echo "[dagmix] pytest, $spec"
  "$bin/python" -m pytest -q -p no:cacheprovider "$@"
  echo "[dagmix] $spec: $((SECONDS - t0)) s"
}

bin551="$(ensure_venv rsl551 "rsl-rl-lib==5.5.1" dev,gymnasium)"
echo "[dagmix] ruff"
"$bin551/ruff" check .
"$bin551/ruff" format --check .
run rsl551 "rsl-rl-lib==5.5.1" dev,gymnasium "$@"
DAGMIX_REQUIRE_MJLAB=1 run rsl542 "rsl-rl-lib==5.4.2" dev,gymnasium,mjlab "$@"
if [[ "${DAGMIX_MATRIX:-1}" != 0 ]]; then
  run rsl401 "rsl-rl-lib==4.0.1" dev,gymnasium "${CORE_TESTS[@]}"
  run rsl330 "rsl-rl-lib==3.3.0" dev,gymnasium "${CORE_TESTS[@]}"
  run rsl301 "rsl-rl-lib==3.0.1" dev,gymnasium "${CORE_TESTS[@]}"
fi
