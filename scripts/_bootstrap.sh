# Sourced by scripts/run and scripts/test: make .venv and install the project
# with its dev extra whenever pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  echo "hubsite needs Python 3.11 or newer on PATH (or PYTHON=/path/to/python3.11)." >&2
  return 1
}

ensure_venv() {
  local stamp=".venv/.installed"
  if [ ! -x .venv/bin/python ]; then
    local python; python="$(find_python)"
    echo "Creating .venv with $python"
    "$python" -m venv .venv || {
      echo "Could not create a virtualenv. On Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }
  fi
  local wanted; wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "Installing dependencies into .venv (the first time takes a few minutes: torch is large)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    echo "$wanted" > "$stamp"
  fi
}
