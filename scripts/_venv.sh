# Sourced by scripts/*.sh: ensure_venv DIR RSL_RL_SPEC creates (or reuses) a venv with dagmix installed.
# torch is the CPU wheel torch==2.13.0; everything else installs under constraints.txt (which pins it),
# so no dependency pulls another torch. pip's wheel cache lives in ~/.cache/dagmix/pip (outside the clone).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/dagmix/pip}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

ensure_venv() {
  local dir="$1" rsl_spec="$2"
  local stamp_want
  stamp_want="$(cat "$REPO/pyproject.toml" "$REPO/constraints.txt" | sha256sum | cut -c1-16)-$rsl_spec"
  if [[ -x "$dir/bin/python" && "$(cat "$dir/.dagmix-stamp" 2>/dev/null)" == "$stamp_want" ]]; then
    return 0
  fi
  echo "[dagmix] creating $dir ($rsl_spec, torch==2.13.0)"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/pip" install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  "$dir/bin/pip" install -q "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
  "$dir/bin/pip" install -q -c "$REPO/constraints.txt" -e "$REPO[dev]" "$rsl_spec" 2>&1 | grep -v "is ignored" || true
  "$dir/bin/python" -c "import torch, rsl_rl, dagmix.algorithms; assert torch.__version__.startswith('2.13.0'), torch.__version__"
  echo "$stamp_want" > "$dir/.dagmix-stamp"
}
