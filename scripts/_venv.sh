# Sourced by scripts/run and scripts/test: create .venv and install camvault into it.
# Needs only python3 (>= 3.11); on Debian/Ubuntu the venv module may need python3-venv,
# which is installed here when we are root.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CAMVAULT_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "camvault needs Python >= 3.11 (found $("$PY" --version 2>&1))" >&2; exit 2; }

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$VENV"; "$PY" -m venv "$VENV"
    else
      echo "python3 -m venv failed: install python3-venv (Debian/Ubuntu)" >&2; exit 2
    fi
  fi
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
stamp="$VENV/.camvault-installed-$1"
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
  echo "installing camvault[$1] into $VENV …" >&2
  python -m pip install -q --upgrade pip
  python -m pip install -q -e "$ROOT[$1]"
  touch "$stamp"
fi
