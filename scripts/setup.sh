#!/usr/bin/env bash
# Install what is missing for tts-trio on Debian/Ubuntu, idempotently:
# system packages (espeak-ng; with --test Chromium for the browser test and
# h2load for the benchmark),
# a virtualenv in .venv, and the project with its pinned dependencies.
# Usage: scripts/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

missing=()
for pkg in espeak-ng libespeak-ng1; do
    have_pkg "$pkg" || missing+=("$pkg")
done
# python3 -m venv needs ensurepip, which Debian ships separately.
if ! "$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1; then
    missing+=("python3-venv")
fi
# The browser test drives Debian's Chromium (Playwright cannot download its own here).
optional=()
if ((want_test)); then
    command -v chromium >/dev/null || optional+=("chromium")
    # Playwright's bundled node driver links against libatomic.
    have_pkg libatomic1 || optional+=("libatomic1")
    # h2load, the C load client of the benchmark (HTTP/1.1 and h2c).
    command -v h2load >/dev/null || optional+=("nghttp2-client")
fi
if ((${#missing[@]} + ${#optional[@]})); then
    echo "setup: installing system packages: ${missing[*]} ${optional[*]}"
    as_root apt-get update -qq
    if ((${#missing[@]})); then
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if ((${#optional[@]})); then
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${optional[@]}" >/dev/null \
            || echo "setup: could not install ${optional[*]}; the browser test will be skipped, the benchmark's h2load rows too" >&2
    fi
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup: creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
fi

extra=""
((want_test)) && extra="[test]"
stamp="$VENV/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)${extra:+-test}"
if [[ ! -f "$stamp" ]]; then
    echo "setup: installing tts-trio${extra} into $VENV"
    # constraints.txt pins every transitive dependency to the versions tested here.
    "$VENV/bin/python" -m pip install -q --upgrade "pip==25.3" 2> >(grep -v "is ignored" >&2)
    "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".${extra}" 2> >(grep -v "is ignored" >&2)
    rm -f "$VENV"/.installed-*
    touch "$stamp"
    # A test install also satisfies a plain one.
    ((want_test)) && touch "${stamp%-test}"
fi
echo "setup: ready ($("$VENV/bin/python" --version), espeak-ng $(espeak-ng --version | awk '{print $4}'))"
