# Sourced by scripts/dev and scripts/test: make sure .venv exists and holds Keel.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    if ! "$PY" -m venv "$ROOT/.venv" 2>/dev/null; then
        echo "python venv module missing; installing python3-venv" >&2
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$ROOT/.venv"
        "$PY" -m venv "$ROOT/.venv"
    fi
fi
# shellcheck disable=SC1091
. "$ROOT/.venv/bin/activate"
keel_install() {
    # $1: extras, e.g. "" or "[test]". Skips pip when nothing changed since the last install.
    local stamp="$ROOT/.venv/.keel-installed$1"
    if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
        # The distribution was named "keel" before "keel-runtime" (on PyPI, "keel" is another
        # project): drop an old install so one `keel` package and command remain.
        if python -m pip show -q keel >/dev/null 2>&1; then
            python -m pip uninstall -y -q keel >/dev/null
            rm -rf "$ROOT/keel.egg-info"
        fi
        python -m pip install -q --disable-pip-version-check -e "$ROOT$1"
        touch "$stamp"
    fi
}
