# Sourced by scripts/*.sh. `ensure_venv NAME RSL_RL_SPEC [EXTRAS]` makes sure the cached virtual environment
# $DAGMIX_VENVS/NAME exists with torch==2.13.0 (the CPU wheel), RSL_RL_SPEC and dagmix's dependencies (with the
# comma-separated EXTRAS), everything else under constraints.txt (which pins torch, so no dependency pulls another
# one), and prints its bin directory. The venvs live outside the clone (default ~/.cache/dagmix/venvs), keyed by a
# stamp of everything that decides their contents (Python, constraints.txt, pyproject's dependency lists, the spec
# and extras); when the stamp differs or the venv is missing they are rebuilt, so a cold cache only costs time.
# The venvs hold dagmix's dependencies but not dagmix: sourcing this file puts THIS clone first on PYTHONPATH (a
# folder outside the clone, one per clone path, holding only a `dagmix` link to it), so every run imports the code it
# is run from, two clones sharing the venvs never import each other's code, and nothing is reinstalled per run.
# Run dagmix as `"$bin/python" -m dagmix.cli`.
# One ensure_venv per venv at a time (a lock file beside it, where flock exists): two scripts started together, e.g.
# a warm-up and .ci/run, wait for each other's build instead of both deleting and rebuilding the same directory.
set -euo pipefail
shopt -s inherit_errexit
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/dagmix/pip}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
export WARP_CACHE_PATH="${WARP_CACHE_PATH:-$HOME/.cache/dagmix/warp}"  # mjlab's Warp kernels, compiled once
DAGMIX_VENVS="${DAGMIX_VENVS:-$HOME/.cache/dagmix/venvs}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

# This clone, first on PYTHONPATH: $DAGMIX_PATHS/<hash of the clone's path>/dagmix -> $REPO
DAGMIX_PATHS="${DAGMIX_PATHS:-$HOME/.cache/dagmix/paths}"
CLONE_PATH="$DAGMIX_PATHS/$(printf '%s' "$REPO" | sha256sum | cut -c1-16)"
mkdir -p "$CLONE_PATH"
ln -sfn "$REPO" "$CLONE_PATH/dagmix"
export PYTHONPATH="$CLONE_PATH${PYTHONPATH:+:$PYTHONPATH}"

_pip() {  # pip, quiet, without the noise of this machine's empty local indexes
  "$@" 2>&1 | { grep -v "is ignored" || true; }
  return "${PIPESTATUS[0]}"
}

_stamp() {  # what decides a venv's contents (not dagmix's own code, which comes from PYTHONPATH)
  local rsl_spec="$1" extras="$2"
  {
    "$PYTHON" --version
    cat "$REPO/constraints.txt"
    "$PYTHON" - "$REPO/pyproject.toml" <<'EOF'
import json, sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
print(json.dumps([p["dependencies"], p.get("optional-dependencies", {})], sort_keys=True))
EOF
    echo "$rsl_spec [$extras]"
  } | sha256sum | cut -c1-16
}

_dependencies() {  # dagmix's dependencies and those of the comma-separated extras, one per line
  "$PYTHON" - "$REPO/pyproject.toml" "$1" <<'EOF'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
deps = list(p["dependencies"])
for extra in filter(None, sys.argv[2].split(",")):
    deps += p["optional-dependencies"][extra]
print("\n".join(deps))
EOF
}

ensure_venv() {
  local name="$1" rsl_spec="$2" extras="${3:-dev}"
  local dir="$DAGMIX_VENVS/$name" stamp
  stamp="$(_stamp "$rsl_spec" "$extras")"
  mkdir -p "$DAGMIX_VENVS"
  local lock_fd
  exec {lock_fd}>"$DAGMIX_VENVS/$name.lock"
  if command -v flock >/dev/null; then
    flock -n "$lock_fd" || { echo "[dagmix] waiting for another script to finish with $dir" >&2; flock "$lock_fd"; }
  fi
  if [[ ! -x "$dir/bin/python" || "$(cat "$dir/.dagmix-stamp" 2>/dev/null)" != "$stamp" ]]; then
    echo "[dagmix] creating $dir ($rsl_spec, torch==2.13.0, extras: $extras)" >&2
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    _pip "$dir/bin/pip" install -q --upgrade pip >&2
    _pip "$dir/bin/pip" install -q "torch==2.13.0" >&2
    local deps
    mapfile -t deps < <(_dependencies "$extras")  # pyproject's lists: dagmix itself is neither built nor installed
    _pip "$dir/bin/pip" install -q -c "$REPO/constraints.txt" "${deps[@]}" "$rsl_spec" >&2
    "$dir/bin/python" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
    echo "$stamp" >"$dir/.dagmix-stamp"
  fi
  # No dagmix in the venv (dependencies only): an installed or editable copy, left by the scripts before the clone came
  # from PYTHONPATH, could be another clone's code. The clone on PYTHONPATH is imported first anyway; this keeps the
  # venv unambiguous.
  if compgen -G "$dir/lib/python*/site-packages/dagmix-*.dist-info" >/dev/null; then
    _pip "$dir/bin/pip" uninstall -q -y dagmix >&2
  fi
  (cd / && "$dir/bin/python" -c "
import os, sys, dagmix
want, got = os.path.realpath(sys.argv[1]), os.path.realpath(os.path.dirname(dagmix.__file__))
assert got == want, f'dagmix imports from {got}, not from this clone {want}'
" "$REPO")
  exec {lock_fd}>&-  # releases the lock
  echo "$dir/bin"
}
