#!/usr/bin/env bash
# Play the Kubernetes manifests (deploy/kubernetes/base) with `podman kube play` and prove
# they run, not only parse: the Deployment's replicas start from the image the container
# check built, all of them on ONE shared voice store (the PersistentVolumeClaim, a named
# Podman volume), and a fleet check runs against the pods:
#   - each pod becomes ready on the readiness probe's path; /health answers on each, with
#     the ConfigMap's settings; the manifest's liveness probe passes (podman healthcheck run);
#   - the server runs as the securityContext's non-root uid/gid, PID 1, on a read-only root;
#   - the Secret's API keys are in force (no key: 401);
#   - a voice created on one pod is listed on every other; one deleted on another is gone;
#   - the same name created on two pods at once: one 201, one 409;
#   - scripts/fleet_check.py --urls (when it exists) passes against the running pods;
#   - the pods stop on SIGTERM with exit code 0 and a clean shutdown in their logs.
# Everything it made (pods, volumes, the Podman secret, its network) is removed at the end,
# also when a check fails.
#
#   bash scripts/container-check.sh        # builds the image, then runs this at its end
#   bash scripts/kube-play-check.sh        # again, with the image container-check.sh left
#
# Needs: root Podman (pod IPs on a Podman network are reachable from the host only as root),
# the image localhost/tts-trio:check (scripts/container-check.sh builds it and keeps it),
# `kubectl` (its built-in kustomize; or a standalone `kustomize`), curl, and a Python with
# PyYAML (.venv/bin/python, else python3). Without kubectl/kustomize or PyYAML it prints
# SKIPPED and exits 0: the manifests are still validated by tests/unit/test_kubernetes_manifests.py.
#
# The manifests are played unchanged apart from what the render step below changes for
# Podman 4.3; every change is listed in the render step's output and explained in the
# Python that makes it.
#
# Environment:
#   CONTAINER_CHECK=skip-if-unavailable   print SKIPPED and exit 0 when Podman cannot run containers
#   CONTAINER_CHECK_STATE=DIR             state directory (default /var/tmp/tts-trio-container)
#   CONTAINER_CHECK_PYTHON=PATH           Python for the render step and JSON (the first of it, .venv/bin/python
#                                         and python3 that has PyYAML)
#   KUBE_PLAY_IMAGE=IMAGE                 the image to play (default localhost/tts-trio:check)
#   KUBE_PLAY_REPLICAS=N                  replicas to run (default 3; at least 2)
#   KUBE_PLAY_FLEET_TIMEOUT=S             seconds scripts/fleet_check.py may take (default 240)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

image=${KUBE_PLAY_IMAGE:-localhost/tts-trio:check}
replicas=${KUBE_PLAY_REPLICAS:-3}
state=${CONTAINER_CHECK_STATE:-/var/tmp/tts-trio-container}
run_id="kube-check-$$"
net="tts-$run_id"
work=""
played=""
pods=()
secret=""
volumes=()

started=$SECONDS
trap 'printf "\nkube play check FAILED at line %s: %s\n" "$LINENO" "$BASH_COMMAND" >&2' ERR
step() { printf '\n==> [kube %3ds] %s\n' $((SECONDS - started)) "$*"; }
info() { printf '    %s\n' "$*"; }
fail() {
    printf '\nkube play check FAILED: %s\n' "$*" >&2
    exit 1
}
skipped() {
    printf 'SKIPPED: kube play check: %s\n' "$*"
    exit 0
}
unavailable() {
    if [[ ${CONTAINER_CHECK:-} == skip-if-unavailable ]]; then
        skipped "$*"
    fi
    printf 'kube play check cannot run: %s\n(set CONTAINER_CHECK=skip-if-unavailable to skip it where Podman cannot run)\n' "$*" >&2
    exit 3
}
# Podman without systemd logs that it cannot set up health check timers; nothing needs them here.
quiet_podman() { podman "$@" 2> >(grep -v "systemd connection" >&2); }

# ------------------------------------------------------------------ tools
step "tools"
command -v podman >/dev/null || unavailable "podman is not installed (scripts/container-check.sh installs it)"
if [[ -z ${CONTAINERS_CONF:-} && -f $state/containers.conf ]]; then
    # Run on its own: the Podman settings scripts/container-check.sh wrote for this host (runc, cgroupfs).
    export CONTAINERS_CONF="$state/containers.conf"
fi
mkdir -p "$state"
podman info >/dev/null 2>"$state/kube-podman-info.err" \
    || unavailable "podman does not work here: $(tail -1 "$state/kube-podman-info.err")"
[[ $(id -u) -eq 0 ]] || unavailable "needs root Podman: the check reaches the pods on their IPs on a Podman network"
if command -v kubectl >/dev/null; then
    kustomize=(kubectl kustomize)
elif command -v kustomize >/dev/null; then
    kustomize=(kustomize build)
else
    skipped "neither kubectl nor kustomize is installed, so the kustomization cannot be rendered"
fi
command -v curl >/dev/null || fail "curl is needed"
py=""
for candidate in ${CONTAINER_CHECK_PYTHON:+"$CONTAINER_CHECK_PYTHON"} "$repo/.venv/bin/python" python3; do
    if "$candidate" -c 'import yaml' 2>/dev/null; then
        py=$candidate
        break
    fi
done
[[ -n $py ]] || skipped "no Python with PyYAML (\$CONTAINER_CHECK_PYTHON, .venv/bin/python or python3) for the render step"
podman image exists "$image" || fail "no image $image: run scripts/container-check.sh, which builds it and keeps it"
info "$(podman --version), ${kustomize[*]} ($(command -v "${kustomize[0]}")), image $image, $replicas replicas"

cleanup() {
    local rc=$?
    trap - ERR
    if [[ -n $played && -f $played ]]; then
        quiet_podman kube down "$played" >/dev/null 2>&1 || true
    fi
    for pod in "${pods[@]}"; do
        podman pod rm -f -t 0 "$pod" >/dev/null 2>&1 || true
    done
    for v in "${volumes[@]}"; do
        podman volume rm -f "$v" >/dev/null 2>&1 || true
    done
    [[ -n $secret ]] && { podman secret rm "$secret" >/dev/null 2>&1 || true; }
    podman network rm -f "$net" >/dev/null 2>&1 || true
    [[ -n $work ]] && rm -rf "$work"
    if ((rc == 0)); then
        info "removed the pods, volumes, secret and network this check made"
    else
        printf '    (removed the pods, volumes, secret and network this check made)\n' >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

work=$(mktemp -d "$state/kube.XXXXXX")
mkdir -p "$state/logs"
rm -f "$state"/logs/tts-trio-kube-check-*.log # the pod logs of an earlier run

# ------------------------------------------------------------------ render
step "render deploy/kubernetes/base with ${kustomize[*]}"
# A throwaway overlay, the way a user deploys the base (docs/kubernetes.md): kustomize's own
# `images:` sets the image, `replicas:` the count, and `nameSuffix:` gives every object a name
# of this run (kustomize also renames the references: configMapRef, secretKeyRef, claimName),
# so the check never touches, nor removes, a volume or pods someone else named tts-trio*.
# (kustomize wants the base as a relative path.)
mkdir "$work/overlay"
cat >"$work/overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$work/overlay" "$repo/deploy/kubernetes/base")
nameSuffix: -$run_id
replicas:
  - name: tts-trio
    count: $replicas
images:
  - name: tts-trio
    newName: ${image%:*}
    newTag: ${image##*:}
EOF
"${kustomize[@]}" "$work/overlay" >"$work/rendered.yaml" 2>"$work/kustomize.err" \
    || { cat "$work/kustomize.err" >&2; fail "${kustomize[*]} failed"; }
info "rendered: $(grep -c '^kind:' "$work/rendered.yaml") objects ($(sed -n 's/^kind: //p' "$work/rendered.yaml" | sort | paste -sd, -))"

# What Podman 4.3's `kube play` cannot take as Kubernetes does, changed here and only here (the
# files under deploy/kubernetes stay what Kubernetes gets). Writes the file to play and the
# facts the checks need (shell assignments).
podman_version=$(podman version --format '{{.Client.Version}}')
"$py" - "$work/rendered.yaml" "$work/play.yaml" "$work/facts.sh" "$work/secret.json" "$run_id" "$podman_version" <<'PY'
import base64, json, secrets, shlex, sys

import yaml

source, target, facts_path, secret_json, run_id, podman_version = sys.argv[1:]
docs = [doc for doc in yaml.safe_load_all(open(source)) if doc]
by_kind = {}
for doc in docs:
    by_kind.setdefault(doc["kind"], []).append(doc)


def one(kind):
    objs = by_kind.get(kind, [])
    if len(objs) != 1:
        sys.exit(f"    render: expected one {kind}, found {len(objs)}")
    return objs[0]


def change(text):
    print(f"    podman: {text}")


facts = {}
deployment, configmap, claim, secret = one("Deployment"), one("ConfigMap"), one("PersistentVolumeClaim"), one("Secret")
pod = deployment["spec"]["template"]["spec"]
(container,) = pod["containers"]
named_ports = {port["name"]: port["containerPort"] for port in container.get("ports", []) if "name" in port}


def port_number(port):
    return named_ports[port] if isinstance(port, str) else int(port)


# Service and PodDisruptionBudget: Podman has no equivalent (4.3 skips kinds it does not know).
# The check reaches each pod on its own IP, as the Service's endpoints would.
played = []
for doc in docs:
    if doc["kind"] in {"Service", "PodDisruptionBudget"}:
        change(f"not played: {doc['kind']} {doc['metadata']['name']} (no Podman equivalent)")
    else:
        played.append(doc)

# Secret: Podman 4.3 stores a played Secret as a Podman secret holding the object's YAML, but
# reads secretKeyRef (and envFrom secretRef) from a Podman secret holding a JSON map of key ->
# base64 value, so the keys are not found and, being optional: true, silently left out: the API
# would be open. So the Secret is not played (kube play would replace a secret of its name);
# the script creates the Podman secret in the form secretKeyRef reads, with fresh random values
# for the example ones, as the Secret's comment tells a deployer to.
keys = {name: secrets.token_hex(24) for name in [*secret.get("stringData", {}), *secret.get("data", {})]}
played.remove(secret)
with open(secret_json, "w") as out:
    json.dump({name: base64.b64encode(value.encode()).decode() for name, value in keys.items()}, out)
change(f"Secret {secret['metadata']['name']}: not played; made with `podman secret create` (keys {', '.join(sorted(keys))}, random values)")

# Ports: Podman 4.3 publishes every containerPort on all host interfaces (hostPort defaults to
# containerPort), which Kubernetes never does: the replicas would collide on host port 8000 and
# the server would be open to the network. Dropped; the pods are reached on their IPs.
container_port = port_number("http") if "http" in named_ports else None
if container.get("ports"):
    del container["ports"]
    change(f"container {container['name']}: ports dropped (Podman 4.3 would publish {sorted(named_ports.values())} on 0.0.0.0 of the host)")

# Probes. Podman 4.3 turns an httpGet probe into `curl -f http://localhost:PORT/PATH` run in the
# container: the image has no curl, and a named port (`port: http`) becomes port 0. It ignores
# readinessProbe and startupProbe; a livenessProbe becomes the container's health check, run by
# systemd timers (none on this host; `podman healthcheck run` runs it on demand), and a failing
# one restarts the container. So:
#  - livenessProbe GET /health -> exec `tts-trio health --url http://127.0.0.1:PORT` (the image's
#    client: exit 0 on an answer below 400, like httpGet), same timing. An argv without shell
#    metacharacters, because Podman runs an exec probe as `sh -c "<argv joined by spaces>"`.
#  - readinessProbe and startupProbe (GET /ready): dropped from the pod; this script does what
#    the kubelet would, polling each pod's readiness path until it answers 200.
live = container.get("livenessProbe")
if live and "httpGet" in live:
    get = live.pop("httpGet")
    if get["path"] != "/health":
        sys.exit(f"    render: the livenessProbe asks {get['path']}; only /health can be converted (tts-trio health)")
    port = port_number(get["port"])
    live["exec"] = {"command": ["tts-trio", "health", "--url", f"http://127.0.0.1:{port}"]}
    facts["live_path"] = get["path"]
    change(f"livenessProbe httpGet {get['path']} port {get['port']!r} -> exec `tts-trio health --url http://127.0.0.1:{port}`")
for name in ("readinessProbe", "startupProbe"):
    probe = container.pop(name, None)
    if probe and "httpGet" in probe:
        facts[f"{name[:-5]}_path"] = probe["httpGet"]["path"]
        facts[f"{name[:-5]}_port"] = port_number(probe["httpGet"]["port"])
        change(f"{name} httpGet {probe['httpGet']['path']} dropped (Podman 4.3 ignores it; the script polls it per pod)")

# emptyDir: Podman 4.3 makes it a volume named after the pod's volume ("tmp"), one for all the
# replicas, and would take over (and `kube down` remove) a volume of that name that is someone
# else's. Renamed for this run; the server writes nothing there.
emptydirs = []
for volume in pod.get("volumes", []):
    if "emptyDir" in volume:
        old, new = volume["name"], f"{volume['name']}-{run_id}"
        volume["name"] = new
        for mount in container.get("volumeMounts", []):
            if mount["name"] == old:
                mount["name"] = new
        emptydirs.append(new)
        change(f"emptyDir {old} -> Podman volume {new} (4.3 shares one volume of that name between the replicas)")

# Left as they are (Podman 4.3 takes them or ignores them harmlessly): the ConfigMap (envFrom; 4.3
# reads ConfigMaps from the played file), the claim (a named volume), runAsUser/runAsGroup,
# readOnlyRootFilesystem, capabilities, allowPrivilegeEscalation, resources. Ignored: runAsNonRoot,
# fsGroup, seccompProfile (Podman's default profile applies), preStop, terminationGracePeriodSeconds
# (Podman stops with its 10 s default), topologySpreadConstraints, enableServiceLinks.

# Replicas: Podman 4.3 plays a Deployment's replicas as pods NAME-pod-0..N-1. From 4.4 on it
# plays one pod whatever the count, so there the Deployment is played as N copies of
# replicas 1 (NAME-0..N-1), which is what the Deployment's N pods are.
replicas = deployment["spec"]["replicas"]
if tuple(int(part) for part in podman_version.split(".")[:2] if part.isdigit()) >= (4, 4):
    played.remove(deployment)
    for index in range(replicas):
        clone = yaml.safe_load(yaml.safe_dump(deployment))
        clone["metadata"]["name"] = f"{deployment['metadata']['name']}-{index}"
        clone["spec"]["replicas"] = 1
        played.append(clone)
    change(f"Deployment {deployment['metadata']['name']}: played as {replicas} Deployments of 1 replica (Podman {podman_version} plays only one)")

security = pod.get("securityContext", {})
facts.update(
    deployment=deployment["metadata"]["name"],
    replicas=replicas,
    container=container["name"],
    port=container_port or int(configmap["data"].get("TTS_PORT", 8000)),
    volume=claim["metadata"]["name"],
    voices_path=configmap["data"].get("TTS_VOICES_PATH", ""),
    secret=secret["metadata"]["name"],
    emptydirs=" ".join(emptydirs),
    slots=configmap["data"].get("TTS_SLOTS", ""),
    uid=security.get("runAsUser", ""),
    gid=security.get("runAsGroup", ""),
    user_key=keys.get("TTS_API_KEYS", ""),
    admin_key=keys.get("TTS_ADMIN_KEYS", ""),
)
if container_port != int(configmap["data"]["TTS_PORT"]):
    sys.exit(f"    render: containerPort {container_port} is not the ConfigMap's TTS_PORT {configmap['data']['TTS_PORT']}")
with open(target, "w") as out:
    yaml.safe_dump_all(played, out, sort_keys=False)
with open(facts_path, "w") as out:
    for name, value in facts.items():
        out.write(f"{name}={shlex.quote(str(value))}\n")
PY
# shellcheck source=/dev/null
source "$work/facts.sh" # deployment replicas container port volume secret emptydirs ... (the Python's facts)
# shellcheck disable=SC2206 # emptydirs: names without spaces
volumes=("$volume" $emptydirs)
[[ -n ${readiness_path:-} && -n ${live_path:-} ]] || fail "the Deployment has no readinessProbe or livenessProbe on httpGet"
((replicas >= 2)) || fail "the check needs at least 2 replicas, the Deployment has $replicas"

# ------------------------------------------------------------------ helpers
# http METHOD URL OUT [CURL ARGS...]: prints the status code (000: no answer), the body goes to OUT.
http() {
    local method=$1 url=$2 out=$3
    shift 3
    curl -sS -o "$out" -w '%{http_code}' --max-time 60 -X "$method" "$@" "$url" 2>>"$work/curl.err" || true
}
user_auth=(-H "Authorization: Bearer $user_key")
admin_auth=(-H "Authorization: Bearer $admin_key")
# json FILE EXPR: EXPR evaluated in Python with the parsed file as `d`.
json() { "$py" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
# custom_ids URL: the ids of the custom voices a pod lists, one per line.
custom_ids() {
    local code
    code=$(http GET "$1/v1/voices" "$work/list.json" "${user_auth[@]}")
    [[ $code == 200 ]] || fail "GET $1/v1/voices: $code $(head -c 300 "$work/list.json")"
    json "$work/list.json" '"\n".join(v["id"] for v in d["voices"] if v.get("kind") == "custom")'
}
pod_logs() { podman logs "$1" 2>&1 | tail -"${2:-30}"; }

# ------------------------------------------------------------------ play
step "podman kube play: $deployment, $replicas replicas, on network $net"
quiet_podman network create "$net" >/dev/null
podman secret create "$secret" "$work/secret.json" >/dev/null
rm "$work/secret.json"
played=$work/play.yaml
t0=$SECONDS
if ! quiet_podman kube play --network "$net" "$played" >"$work/play.out" 2>&1; then
    cat "$work/play.out" >&2
    fail "podman kube play failed"
fi
# The pods kube play made, from its report (Podman 4.3 names them $deployment-pod-0..N-1).
mapfile -t pods < <(awk '/^Pod:$/ { getline; print }' "$work/play.out" | xargs -r podman pod inspect -f '{{.Name}}' | sort)
((${#pods[@]} == replicas)) || fail "kube play made ${#pods[@]} pods, not $replicas: $(cat "$work/play.out")"
for pod in "${pods[@]}"; do
    info "pod $(podman pod ps --filter "name=^$pod\$" --format '{{.Name}} {{.Status}}, {{.NumberOfContainers}} containers')"
done
info "volumes: $(podman volume ls -q | grep -F -e "$volume" -e "$run_id" | paste -sd' ' -), secret: $(podman secret ls --format '{{.Name}}' | grep -F "$secret" || echo none)"
urls=()
for pod in "${pods[@]}"; do
    ip=$(podman inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$pod-$container")
    [[ -n $ip ]] || fail "pod $pod has no address on $net"
    urls+=("http://$ip:$port")
done

step "readiness: each pod's $readiness_path (the readinessProbe's path) until 200"
for ((i = 0; i < replicas; i++)); do
    pod=${pods[i]} url=${urls[i]}
    deadline=$((SECONDS + 90))
    while true; do
        code=$(curl -s -o "$work/ready.json" -w '%{http_code}' --max-time 2 "$url$readiness_path" || true)
        [[ $code == 200 ]] && break
        status=$(podman inspect -f '{{.State.Status}}' "$pod-$container" 2>/dev/null || echo gone)
        if [[ $status != running ]] || ((SECONDS > deadline)); then
            pod_logs "$pod-$container" >&2
            fail "pod $pod not ready (container $status, last answer $code)"
        fi
        sleep 0.25
    done
    info "$pod at $url ready after $((SECONDS - t0))s: $(head -c 200 "$work/ready.json")"
done

# ------------------------------------------------------------------ each pod
step "each pod: /health, the settings, the liveness probe, the user, the read-only root, the keys"
for ((i = 0; i < replicas; i++)); do
    pod=${pods[i]} url=${urls[i]} name="${pods[i]}-$container"
    code=$(http GET "$url$live_path" "$work/health.json")
    [[ $code == 200 ]] || fail "$pod $live_path: $code $(head -c 300 "$work/health.json")"
    summary=$(json "$work/health.json" '"%s, engine %s, slots %s, %s voices" % (d["status"], d["engine"], d["slots"]["total"], d.get("voices"))')
    [[ $summary == "ok, engine system, slots $slots,"* ]] \
        || fail "$pod $live_path: $summary (expected ok, engine system and the ConfigMap's TTS_SLOTS $slots)"
    podman healthcheck run "$name" >/dev/null 2>"$work/healthcheck.err" \
        || fail "$pod: the liveness probe fails in the container: $(tail -1 "$work/healthcheck.err")"
    identity=$(podman exec "$name" sh -c 'echo "$(id -u):$(id -g) $(tr "\0" " " </proc/1/cmdline)"')
    identity=${identity% }
    [[ $identity == "$uid:$gid "* ]] || fail "$pod: the server does not run as the securityContext's $uid:$gid: $identity"
    [[ $identity == *"tts-trio serve"* ]] || fail "$pod: PID 1 is not tts-trio serve: $identity"
    podman exec "$name" sh -c '! touch /kube-check 2>/dev/null && touch /tmp/kube-check && touch "$TTS_VOICES_PATH/.kube-check" && rm /tmp/kube-check "$TTS_VOICES_PATH/.kube-check"' \
        || fail "$pod: the root filesystem is writable, or /tmp or $voices_path is not"
    code=$(http GET "$url/v1/voices" "$work/nokey.json")
    [[ $code == 401 ]] || fail "$pod: GET /v1/voices without a key answered $code, not 401: the Secret's keys are not in force"
    info "$pod: $live_path $summary; liveness probe healthy; uid:gid ${identity%% *}, PID 1 ${identity#* }; root read-only, /tmp and $voices_path writable; no key: 401"
done

# ------------------------------------------------------------------ the shared store
step "the shared voice store ($volume) across the pods"
text="This recording comes from the kube play check. It is long enough to be used as the reference audio of a new voice."
code=$(http POST "${urls[0]}/v1/tts/generate" "$work/reference.wav" "${user_auth[@]}" \
    -H 'Content-Type: application/json' --data "{\"text\": \"$text\", \"output_format\": \"wav\"}")
[[ $code == 200 && $(head -c 4 "$work/reference.wav") == RIFF ]] || fail "generate on ${pods[0]}: $code"
info "${pods[0]}: generate (user key): $(stat -c %s "$work/reference.wav") bytes of WAV"
create() { # create URL NAME OUT: prints the status code
    http POST "$1/v1/voices/create" "$3" "${admin_auth[@]}" \
        -F "name=$2" -F language=en -F "audio_file=@$work/reference.wav;type=audio/wav;filename=reference.wav"
}
code=$(create "${urls[0]}" "Kube play check $$" "$work/created.json")
[[ $code == 201 ]] || fail "create a voice on ${pods[0]} (admin key): $code $(head -c 300 "$work/created.json")"
voice=$(json "$work/created.json" 'd["id"]')
info "${pods[0]}: created voice $voice (admin key): 201"
for ((i = 1; i < replicas; i++)); do
    ids=$(custom_ids "${urls[i]}")
    grep -qx "$voice" <<<"$ids" || fail "${pods[i]} does not list $voice, created on ${pods[0]}"
    info "${pods[i]}: lists $voice"
done
# The same name on two pods at once, three times: the store's name claim lets exactly one win.
results=() race_voices=()
for round in 1 2 3; do
    # Started in turn first, so neither pod has a head start every time.
    racers=()
    for side in $(((round % 2) + 1)) $((2 - round % 2)); do
        create "${urls[side % replicas]}" "Kube play race $$ $round" "$work/race$side.json" >"$work/race$side.code" &
        racers+=($!)
    done
    wait "${racers[@]}"
    codes="$(cat "$work/race1.code") $(cat "$work/race2.code")"
    [[ $codes == "201 409" || $codes == "409 201" ]] \
        || fail "the same name created on ${pods[1]} and ${pods[2 % replicas]} at once: $codes, expected one 201 and one 409"
    results+=("$codes")
    winner=$work/race1.json
    [[ $(cat "$work/race1.code") == 201 ]] || winner=$work/race2.json
    race_voices+=("$(json "$winner" 'd["id"]')")
done
info "the same name on ${pods[1]} and ${pods[2 % replicas]} at once, 3 times: $(IFS=,; echo "${results[*]}" | sed 's/,/, /g')"
last=$((replicas - 1))
code=$(http DELETE "${urls[last]}/v1/voices/$voice" "$work/deleted.json" "${admin_auth[@]}")
[[ $code == 200 || $code == 204 ]] || fail "delete $voice on ${pods[last]}: $code $(head -c 300 "$work/deleted.json")"
ids=$(custom_ids "${urls[0]}")
! grep -qx "$voice" <<<"$ids" || fail "${pods[0]} still lists $voice, deleted on ${pods[last]}"
info "${pods[last]}: deleted $voice ($code); ${pods[0]} no longer lists it"
# The race's voices too, so what follows starts from an empty store.
for race_voice in "${race_voices[@]}"; do
    code=$(http DELETE "${urls[0]}/v1/voices/$race_voice" "$work/deleted.json" "${admin_auth[@]}")
    [[ $code == 200 || $code == 204 ]] || fail "delete $race_voice on ${pods[0]}: $code $(head -c 300 "$work/deleted.json")"
done
ids=$(custom_ids "${urls[last]}")
[[ -z $ids ]] || fail "${pods[last]} still lists custom voices after every one was deleted: $ids"
info "${pods[0]}: deleted the race's ${#race_voices[@]} voices; ${pods[last]} lists no custom voice"

# ------------------------------------------------------------------ fleet_check.py
if [[ -f scripts/fleet_check.py ]]; then
    fleet_py=$repo/.venv/bin/python
    [[ -x $fleet_py ]] || fleet_py=python3
    joined=$(IFS=,; echo "${urls[*]}")
    step "scripts/fleet_check.py --urls $joined"
    fleet_args=(--urls "$joined")
    fleet_help=$("$fleet_py" scripts/fleet_check.py --help 2>&1 || true)
    # The pods need a key: the admin key (it may also do what a user key may), passed the way the
    # script takes it (an option when its --help names one; TTS_API_KEY, the CLI's variable, always).
    if grep -q -- '--admin-key' <<<"$fleet_help"; then
        fleet_args+=(--admin-key "$admin_key")
    fi
    if grep -q -- '--api-key' <<<"$fleet_help"; then
        fleet_args+=(--api-key "$admin_key")
    fi
    t1=$SECONDS
    rm -f "$work/fleet.rc"
    { TTS_API_KEY=$admin_key TTS_ADMIN_KEY=$admin_key timeout "${KUBE_PLAY_FLEET_TIMEOUT:-240}" \
        "$fleet_py" scripts/fleet_check.py "${fleet_args[@]}" 2>&1 || echo $? >"$work/fleet.rc"; } | sed 's/^/    /'
    [[ ! -f $work/fleet.rc ]] || fail "scripts/fleet_check.py failed against the pods (exit $(cat "$work/fleet.rc"))"
    info "fleet_check.py passed in $((SECONDS - t1))s"
else
    step "scripts/fleet_check.py: not there (yet); the checks above stand in for it"
fi

# ------------------------------------------------------------------ stop
step "stop the pods (SIGTERM)"
t1=$(date +%s%N)
quiet_podman pod stop -t 10 "${pods[@]}" >/dev/null
ms=$((($(date +%s%N) - t1) / 1000000))
for pod in "${pods[@]}"; do
    name="$pod-$container"
    exit_code=$(podman inspect -f '{{.State.ExitCode}}' "$name")
    podman logs "$name" >"$state/logs/$pod.log" 2>&1 || true
    [[ $exit_code == 0 ]] || { tail -30 "$state/logs/$pod.log" >&2; fail "$pod exited with $exit_code on SIGTERM"; }
    grep -q "received SIGTERM, shutting down" "$state/logs/$pod.log" \
        || { tail -30 "$state/logs/$pod.log" >&2; fail "no 'received SIGTERM, shutting down' in the log of $pod"; }
    if grep -E 'Traceback|"level": "(error|critical)"' "$state/logs/$pod.log" >&2; then
        fail "errors in the log of $pod (above; $state/logs/$pod.log)"
    fi
done
info "all $replicas pods stopped in $((ms / 1000)).$((ms % 1000 / 100))s, exit code 0, 'received SIGTERM, shutting down', no errors (logs: $state/logs/)"

step "kube play check passed in $((SECONDS - started))s"
