#!/usr/bin/env bash
# Build the tts-trio image with Podman and prove it works:
#   /health answers, a real generate request returns valid WAV audio, the
#   process runs as a non-root user, a voice created through the API survives
#   a container restart on the same volume, and `podman stop` (SIGTERM) ends
#   the server cleanly: exit code 0, well before the stop timeout, a clean
#   shutdown in the log. Then scripts/kube-play-check.sh plays the Kubernetes
#   manifests (deploy/kubernetes/base) with `podman kube play` on this image:
#   3 replicas on one shared voice store, checked as a fleet (about 10 s).
#
#   bash scripts/container-check.sh
#   CONTAINER_CHECK=skip-if-unavailable bash scripts/container-check.sh   # exit 0 where Podman cannot run
#
# Offline from container registries: the Debian base named by the
# Containerfile's FROM is made with debootstrap when it is not already local,
# and every Python dependency comes from a wheelhouse built here (wheelhouse/),
# so the image build never needs the package index. Both are cached between
# runs: the base image in Podman's store, the wheelhouse until pyproject.toml
# or constraints.txt change.
#
# Environment:
#   CONTAINER_CHECK=skip-if-unavailable   print SKIPPED and exit 0 when Podman is missing or cannot run containers
#   CONTAINER_CHECK_STATE=DIR             state directory (default /var/tmp/tts-trio-container)
#   CONTAINER_CHECK_PYTHON=PATH           Python whose pip builds the wheelhouse (default .venv/bin/python, else python3)
#   CONTAINER_CHECK_KEEP_IMAGE=0          also remove the built image at the end (default: kept as a build cache)
#   KUBE_PLAY_CHECK=0                     leave out the kube play check (scripts/kube-play-check.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

image=localhost/tts-trio:check
state=${CONTAINER_CHECK_STATE:-/var/tmp/tts-trio-container}
wheelhouse=$repo/wheelhouse
stop_timeout=15
run_id="tts-check-$$"
volume="$run_id-voices"
containers=()
work=""

started=$SECONDS
trap 'printf "\ncontainer check FAILED at line %s: %s\n" "$LINENO" "$BASH_COMMAND" >&2' ERR
step() { printf '\n==> [%3ds] %s\n' $((SECONDS - started)) "$*"; }
info() { printf '    %s\n' "$*"; }
fail() {
    printf '\ncontainer check FAILED: %s\n' "$*" >&2
    exit 1
}
# Podman without systemd logs that it cannot set up health check timers; nothing needs them here.
quiet_podman() { podman "$@" 2> >(grep -v "unable to get systemd connection" >&2); }
unavailable() {
    if [[ ${CONTAINER_CHECK:-} == skip-if-unavailable ]]; then
        printf 'SKIPPED: container check: %s\n' "$*"
        exit 0
    fi
    printf 'container check cannot run: %s\n(set CONTAINER_CHECK=skip-if-unavailable to skip it where Podman cannot run)\n' "$*" >&2
    exit 3
}

# ------------------------------------------------------------------ podman
step "podman"
if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        info "installing podman, runc and debootstrap with apt-get"
        apt-get update -qq || unavailable "apt-get update failed; cannot install podman"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            podman runc debootstrap uidmap fuse-overlayfs slirp4netns >/dev/null \
            || unavailable "apt-get install podman failed"
    else
        unavailable "podman (with runc) is not installed and cannot be installed here (needs root and apt-get)"
    fi
fi

mkdir -p "$state"
# Podman needs runc (crun rejects the cgroup layout of these machines), the
# cgroupfs manager (no systemd) and ulimits the host can grant.
nofile=$(ulimit -Hn)
[[ $nofile == unlimited || $nofile -gt 20000 ]] && nofile=20000
nproc=$(ulimit -Hu)
[[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
cat >"$state/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF="$state/containers.conf"
podman info >/dev/null 2>"$state/podman-info.err" \
    || unavailable "podman does not work here: $(tail -1 "$state/podman-info.err")"
info "$(podman --version), runtime runc, ulimits nofile=$nofile nproc=$nproc, state in $state"

cleanup() {
    local rc=$?
    for name in "${containers[@]}"; do
        podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
    done
    podman volume rm -f "$volume" >/dev/null 2>&1 || true
    [[ -n $work ]] && rm -rf "$work"
    if [[ ${CONTAINER_CHECK_KEEP_IMAGE:-1} == 0 ]]; then
        podman rmi -f "$image" >/dev/null 2>&1 || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ base image
# The base the Containerfile builds FROM; made with debootstrap when it is not local.
base=$(sed -n 's/^ARG BASE_IMAGE=//p' Containerfile | head -1)
[[ -n $base ]] || fail "no 'ARG BASE_IMAGE=' in Containerfile"
step "base image $base"
if podman image exists "$base"; then
    info "present (cached)"
else
    command -v debootstrap >/dev/null \
        || { [[ $(id -u) -eq 0 ]] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; } \
        || unavailable "debootstrap is needed to make $base without a registry"
    # The Debian mirror this host's apt uses (first "URIs:" of a deb822 file, or a one-line "deb" entry).
    mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *\([^ ]*debian\)\/*$/\1/p' | head -1 || true)
    [[ -n $mirror ]] || mirror=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep 'debian/*$' | head -1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    security=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *\([^ ]*debian-security\)\/*$/\1/p' | head -1 || true)
    [[ -n $security ]] || security=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep 'debian-security/*$' | head -1 || true)
    info "debootstrap --variant=minbase bookworm from $mirror (log: $state/debootstrap.log)"
    rootfs="$state/rootfs"
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$state/debootstrap.log" 2>&1 \
        || { tail -20 "$state/debootstrap.log" >&2; fail "debootstrap failed"; }
    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
EOF
    [[ -z $security ]] || echo "deb $security bookworm-security main" >>"$rootfs/etc/apt/sources.list"
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
    tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
    rm -rf "$rootfs"
    info "imported as $base"
fi

# A container that can run at all (nested in another container it often cannot).
if ! podman run --rm --network none "$base" true 2>"$state/probe.err"; then
    unavailable "podman cannot run containers here: $(grep -v '^$' "$state/probe.err" | tail -2 | tr '\n' ' ')"
fi

# ------------------------------------------------------------------ wheelhouse
step "wheelhouse (every dependency as a wheel, for an image build without the package index)"
python=${CONTAINER_CHECK_PYTHON:-}
if [[ -z $python ]]; then
    if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
fi
"$python" -m pip --version >/dev/null 2>&1 || fail "$python has no pip to build the wheelhouse with"
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
arch=$(uname -m)
# The project's build backend, pinned in pyproject.toml's [build-system].
backend=$(sed -n 's/^requires = \["\(setuptools==[^"]*\)"\]/\1/p' pyproject.toml | head -1)
backend=${backend:-setuptools}
stamp=".deps-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)-py$pyver-$arch"
pip_quiet() { "$python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
if [[ -f $wheelhouse/$stamp ]]; then
    info "reusing $wheelhouse ($(find "$wheelhouse" -name '*.whl' | wc -l) wheels; pyproject.toml and constraints.txt unchanged)"
else
    rm -rf "$wheelhouse"
    mkdir -p "$wheelhouse"
    # Build the project wheel from a copy, so the working tree gets no build/ or egg-info.
    src=$(mktemp -d "$state/src.XXXXXX")
    cp -r pyproject.toml README.md constraints.txt tts_trio "$src/"
    find "$src" -name __pycache__ -prune -exec rm -rf {} +
    pip_quiet wheel -q --no-deps --wheel-dir "$src/dist" "$src"
    project_wheel=$(ls "$src"/dist/tts_trio-*.whl)
    if [[ $pyver == 3.11 ]]; then
        # The image's Python is Debian bookworm's 3.11 on this architecture: build for it here.
        pip_quiet wheel -q --constraint constraints.txt --wheel-dir "$wheelhouse" "$project_wheel" "$backend"
    else
        # Another Python here: download the image's wheels for CPython 3.11 on glibc Linux.
        pip_quiet download -q --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
            --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux2014_$arch" \
            --constraint constraints.txt --dest "$wheelhouse" "$project_wheel" "$backend"
    fi
    # The image builds the project from its sources; the wheelhouse holds only what it depends on.
    rm -f "$wheelhouse"/tts_trio-*.whl
    rm -rf "$src"
    touch "$wheelhouse/$stamp"
    info "built $wheelhouse: $(find "$wheelhouse" -name '*.whl' | wc -l) wheels, $(du -sh "$wheelhouse" | cut -f1)"
fi

# ------------------------------------------------------------------ image
step "podman build --format docker -t $image -f Containerfile ."
old_id=$(podman image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
build_started=$SECONDS
if ! podman build --format docker --build-arg WHEELHOUSE=wheelhouse -t "$image" -f Containerfile . \
    >"$state/build.log" 2>&1; then
    tail -40 "$state/build.log" >&2
    fail "podman build failed (log: $state/build.log)"
fi
! grep -q "^tts-trio build: installing from the package index" "$state/build.log" \
    || fail "the build used the package index, not the wheelhouse (log: $state/build.log)"
new_id=$(podman image inspect -f '{{.Id}}' "$image")
if [[ -n $old_id && $old_id != "$new_id" ]]; then
    podman rmi "$old_id" >/dev/null 2>&1 || true # the previous build, now untagged
fi
info "built in $((SECONDS - build_started))s: $(podman image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')," \
    "$(grep -c 'Using cache' "$state/build.log" || true) cached steps (log: $state/build.log)"
user=$(podman image inspect -f '{{.Config.User}}' "$image")
[[ $user == 10001:10001 ]] || fail "image user is '$user', expected 10001:10001"
podman image inspect -f '{{.Config.Healthcheck}}' "$image" | grep -q "/ready" \
    || fail "image has no HEALTHCHECK on /ready (built without --format docker?)"

# ------------------------------------------------------------------ helpers

# HTTP checks run with the host's Python (standard library only).
check() {
    python3 - "$@" <<'PY'
import http.client, json, struct, sys, time, urllib.error, urllib.parse, urllib.request, uuid

action, base = sys.argv[1], sys.argv[2]
args = sys.argv[3:]


def fetch(path, data=None, headers=None, timeout=30):
    request = urllib.request.Request(base + path, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def die(message):
    print("    " + message, file=sys.stderr)
    sys.exit(1)


if action == "ready":  # ready BASE TIMEOUT
    deadline = time.monotonic() + float(args[0])
    while True:
        try:
            status, _, body = fetch("/ready", timeout=2)
            if status == 200:
                print(f"    /ready: {body.decode().strip()}")
                sys.exit(0)
        except OSError:
            pass
        if time.monotonic() > deadline:
            die(f"/ready not 200 after {args[0]} s")
        time.sleep(0.25)

elif action == "health":  # health BASE
    status, _, body = fetch("/health")
    health = json.loads(body)
    if status != 200 or health.get("status") != "ok" or health.get("engine") != "system":
        die(f"/health: {status} {body[:300]!r}")
    print(f"    /health: status ok, engine {health['engine']}, slots {health['slots']['total']}, "
          f"version {health.get('version')}, {health.get('voices')} voices")

elif action == "generate":  # generate BASE OUT.wav  -> a real WAV of speech, at least 3 s
    text = ("This recording comes from the tts-trio container check. It is long enough "
            "to be used as the reference audio of a new voice, and it proves the engine speaks.")
    status, headers, body = fetch("/v1/tts/generate", json.dumps({"text": text, "output_format": "wav"}).encode(),
                                  {"Content-Type": "application/json"}, timeout=60)
    if status != 200:
        die(f"generate: {status} {body[:300]!r}")
    if not headers.get("Content-Type", "").startswith("audio/wav"):
        die(f"generate: Content-Type {headers.get('Content-Type')!r}")
    if body[:4] != b"RIFF" or body[8:12] != b"WAVE":
        die(f"generate: not a RIFF/WAVE file: {body[:16]!r}")
    # Walk the chunks (streamed WAVs carry an open-ended size, so the wave module is not used).
    offset, fmt, data = 12, None, None
    while offset + 8 <= len(body):
        chunk, size = body[offset:offset + 4], struct.unpack("<I", body[offset + 4:offset + 8])[0]
        if chunk == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[offset + 8:offset + 24])
        elif chunk == b"data":
            data = body[offset + 8:]
            break
        offset += 8 + size + (size & 1)
    if fmt is None or data is None:
        die("generate: WAV without fmt or data chunk")
    encoding, channels, rate, _, _, bits = fmt
    if encoding != 1 or bits != 16 or channels != 1 or not 8000 <= rate <= 48000:
        die(f"generate: unexpected format {fmt}")
    samples = struct.unpack(f"<{len(data) // 2}h", data[: len(data) // 2 * 2])
    seconds = len(samples) / rate
    peak = max(abs(sample) for sample in samples) if samples else 0
    rms = (sum(sample * sample for sample in samples) / max(1, len(samples))) ** 0.5
    if seconds < 3 or peak < 1000 or rms < 100:
        die(f"generate: {seconds:.2f} s, peak {peak}, rms {rms:.0f}: not speech")
    with open(args[0], "wb") as out:
        out.write(body)
    print(f"    generate: {len(body)} bytes, PCM s16le mono {rate} Hz, {seconds:.2f} s, peak {peak}, rms {rms:.0f}")

elif action == "create-voice":  # create-voice BASE NAME FILE.wav  -> prints the voice id
    name, path = args
    boundary = uuid.uuid4().hex
    audio = open(path, "rb").read()
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="language"\r\n\r\nen\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="audio_file"; filename="reference.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n".encode() + audio + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    status, _, body = fetch("/v1/voices/create", b"".join(parts),
                            {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    if status != 201:
        die(f"create voice: {status} {body[:300]!r}")
    voice = json.loads(body)
    print(f"    created voice {voice['id']} ({voice['name']!r}, {voice.get('duration')} s)", file=sys.stderr)
    print(voice["id"])

elif action == "has-voice":  # has-voice BASE ID
    status, _, body = fetch("/v1/voices")
    listing = json.loads(body)
    custom = [voice for voice in listing.get("voices", []) if voice.get("kind") == "custom"]
    if status != 200 or args[0] not in {voice["id"] for voice in custom}:
        die(f"voice {args[0]} not listed: {status} custom voices {custom}")
    print(f"    /v1/voices lists {args[0]} ({len(custom)} custom voice(s))")

elif action == "slow-stream":  # slow-stream BASE STARTED END: a long SSE stream read slowly, so it is still running
    started, end = args
    text = " ".join(f"Sentence {n} of a long text that keeps this stream busy until the server shuts down." for n in range(200))
    query = urllib.parse.urlencode({"text": text, "output_format": "pcm"})
    last, event, pending, received = "no final event", None, b"", 0
    try:
        with urllib.request.urlopen(f"{base}/v1/tts/stream-sse?{query}", timeout=60) as response:
            open(started, "w").close()
            while chunk := response.read(4096):
                received += len(chunk)
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.startswith(b"event:"):
                        event = line[6:].strip().decode()
                    elif line.startswith(b"data:") and event in ("done", "error"):
                        last = event if event == "done" else f"error {json.loads(line[5:]).get('code')}"
                time.sleep(0.02)  # about 200 KB/s: the server has audio left to send when SIGTERM comes
    except urllib.error.HTTPError as error:
        last = f"HTTP {error.code}: {error.read()[:200]!r}"
    except (OSError, http.client.HTTPException) as error:
        # A reader this slow has megabytes of audio queued in socket buffers ahead of the final
        # event, so the connection can end at the graceful timeout before that event arrives.
        last = f"cut ({type(error).__name__} after {received} bytes; {last})"
    with open(end, "w") as out:
        out.write(last)

else:
    die(f"unknown action {action}")
PY
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start NAME [PORT]: run the image detached with the voices volume on a free loopback port; sets $url.
# PORT (default 8000) is where the server listens inside the container, set with TTS_PORT.
start() {
    local name=$1 inner=${2:-8000} port
    port=$(free_port)
    containers+=("$name")
    # --health-interval=disable: Podman schedules health checks with systemd timers, which machines
    # without systemd lack; the check itself still runs on demand (podman healthcheck run).
    quiet_podman run -d --name "$name" --health-interval=disable -e "TTS_PORT=$inner" \
        -p "127.0.0.1:$port:$inner" -v "$volume:/data/voices" "$image" >/dev/null
    url="http://127.0.0.1:$port"
    info "container $name on $url (volume $volume at /data/voices)"
    local t0=$SECONDS
    if ! check ready "$url" 60; then
        podman logs "$name" 2>&1 | tail -30 >&2
        fail "container $name did not become ready"
    fi
    info "ready after $((SECONDS - t0))s"
}

# stop NAME MAX_MS: SIGTERM via podman stop; exit code 0 within MAX_MS (well before the stop
# timeout, so never killed), a clean shutdown in the log
stop() {
    local name=$1 max_ms=$2 t0 ms elapsed code logs
    t0=$(date +%s%N)
    quiet_podman stop -t "$stop_timeout" "$name" >/dev/null
    ms=$((($(date +%s%N) - t0) / 1000000))
    elapsed=$((ms / 1000)).$((ms % 1000 / 100))
    code=$(podman inspect -f '{{.State.ExitCode}}' "$name")
    logs=$(podman logs "$name" 2>&1)
    printf '%s\n' "$logs" >"$state/logs/$name.log"
    info "podman stop (SIGTERM, timeout ${stop_timeout}s): stopped in ${elapsed}s, exit code $code"
    if [[ $code != 0 ]] || ((ms >= max_ms)); then
        printf '%s\n' "$logs" | tail -30 >&2
        fail "container $name did not stop cleanly on SIGTERM (exit code $code after ${elapsed}s)"
    fi
    grep -q "received SIGTERM, shutting down" <<<"$logs" \
        || { printf '%s\n' "$logs" | tail -30 >&2; fail "no 'received SIGTERM, shutting down' in the log of $name"; }
    if grep -E "Traceback|\[ERROR\]|\[CRITICAL\]" <<<"$logs" >&2; then
        fail "errors in the log of $name (above)"
    fi
    info "log: $(grep -o 'received SIGTERM, shutting down' <<<"$logs"), no errors or tracebacks"
}

# ------------------------------------------------------------------ run
work=$(mktemp -d "$state/run.XXXXXX")
rm -rf "$state/logs"
mkdir -p "$state/logs"
podman volume create "$volume" >/dev/null

step "first container: health, generate, user, voice upload"
start "$run_id-1"
check health "$url"
check generate "$url" "$work/speech.wav"
identity=$(podman exec "$run_id-1" sh -c 'echo "$(id -u):$(id -g) $(tr "\0" " " </proc/1/cmdline)"')
[[ $identity == "10001:10001 "* ]] || fail "the server does not run as 10001:10001: $identity"
[[ $identity == *"tts-trio serve"* ]] || fail "PID 1 is not tts-trio serve: $identity"
info "runs as uid:gid ${identity%% *}; PID 1 is: ${identity#* }"
workers=$(podman exec "$run_id-1" sh -c \
    'for f in /proc/[0-9]*/cmdline; do tr "\0" " " <"$f"; echo; done 2>/dev/null | grep -c "/espeak_worker[.]py $"' || true)
slots=$(podman exec "$run_id-1" python3 -c 'import json, urllib.request
print(json.load(urllib.request.urlopen("http://127.0.0.1:8000/health"))["slots"]["total"])')
info "espeak-ng worker processes: $workers for $slots slots"
voice=$(check create-voice "$url" "Container check" "$work/speech.wav")
check has-voice "$url" "$voice"
if podman healthcheck run "$run_id-1" >/dev/null 2>"$work/healthcheck.err"; then
    info "podman healthcheck run: healthy"
else
    fail "podman healthcheck run: unhealthy ($(tail -1 "$work/healthcheck.err"))"
fi

step "stop the first container (SIGTERM, idle)"
stop "$run_id-1" 5000

step "second container on the same volume, listening on TTS_PORT=9000: the voice survived the restart"
start "$run_id-2" 9000
check has-voice "$url" "$voice"
check health "$url"
podman healthcheck run "$run_id-2" >/dev/null 2>"$work/healthcheck2.err" \
    || fail "podman healthcheck run on port 9000: unhealthy ($(tail -1 "$work/healthcheck2.err"))"
info "podman healthcheck run (port 9000): healthy"

step "stop the second container (SIGTERM while a stream is running)"
# A stream still sending when SIGTERM comes gets graceful_timeout (5 s) to finish, then ends
# (a final `shutting_down` error event); the engine workers stop and the server exits 0.
check slow-stream "$url" "$work/stream.started" "$work/stream.end" &
stream_pid=$!
for _ in $(seq 100); do [[ -f $work/stream.started ]] && break; sleep 0.1; done
[[ -f $work/stream.started ]] || fail "the stream did not start: $(cat "$work/stream.end" 2>/dev/null)"
sleep 0.5
# Bound: graceful_timeout 5 s + up to 2 s for an engine worker that does not answer its stop
# request (it is killed then) + margin; still under the stop timeout, so never SIGKILLed.
stop "$run_id-2" 12000
wait "$stream_pid" || fail "the streaming client failed"
stream_end=$(cat "$work/stream.end")
info "the running stream ended: $stream_end"
case $stream_end in
    "error shutting_down" | cut*) ;; # ended by the shutdown: a final event, or cut at the graceful timeout
    *) fail "the running stream was not ended by the shutdown ($stream_end)" ;;
esac

# ------------------------------------------------------------------ kube play
# The Kubernetes manifests, played by Podman on the image just built and tested (no second build).
step "kube play: deploy/kubernetes/base on $image (scripts/kube-play-check.sh)"
if [[ ${KUBE_PLAY_CHECK:-1} == 0 ]]; then
    info "left out (KUBE_PLAY_CHECK=0)"
else
    KUBE_PLAY_IMAGE=$image CONTAINER_CHECK_STATE=$state bash scripts/kube-play-check.sh \
        || fail "the kube play check failed (above)"
fi

step "container check passed in $((SECONDS - started))s"
echo "container check passed"
