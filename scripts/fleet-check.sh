#!/usr/bin/env bash
# Fleet check: 3 real replicas of tts-trio on one shared voice store behind a
# real HAProxy, on loopback. Checks that voices, the current voice and voice
# names are fleet-wide, that an engine switch on one replica reaches all of
# them (within 5 s), that a rolling restart under load loses no request, and
# that a replica killed mid-stream fails its clients fast while the rest of
# the fleet and the store carry on. One line per check; exit 1 on a failure.
# The checks and what counts as a lost request: scripts/fleet_check.py.
#
#   bash scripts/fleet-check.sh                     # starts 3 replicas and HAProxy (about a minute)
#   bash scripts/fleet-check.sh --replicas 4
#   bash scripts/fleet-check.sh --urls http://10.0.0.5:8000,http://10.0.0.6:8000,http://10.0.0.7:8000
#                                                   # only the state checks (1-3), on running replicas
#   bash scripts/fleet-check.sh --keep              # keep the temporary directory (logs, haproxy.cfg)
#
# Needs .venv (make setup-test creates it). Installs Debian's haproxy when it
# is missing (as root, or with sudo); --urls needs no HAProxy.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
if [[ ! -x "$VENV/bin/python" || ! -x "$VENV/bin/tts-trio" ]]; then
    echo "fleet-check: $VENV is missing; run make setup-test first" >&2
    exit 2
fi

external=0
for arg in "$@"; do
    [[ "$arg" == --urls || "$arg" == --urls=* ]] && external=1
done

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
if ((!external)) && ! command -v haproxy >/dev/null; then
    echo "fleet-check: installing haproxy"
    # Like scripts/setup.sh: the index is refreshed only when the package is not found.
    install_haproxy() {
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends haproxy >/dev/null
    }
    install_haproxy 2>/dev/null || { as_root apt-get update -qq && install_haproxy; } || true
    if ! command -v haproxy >/dev/null; then
        echo "fleet-check: could not install haproxy" >&2
        exit 2
    fi
fi

# exec: a signal to this script reaches the driver, which stops what it started.
exec "$VENV/bin/python" scripts/fleet_check.py "$@"
