"""The Kubernetes manifests (deploy/kubernetes/) are valid and agree with the server.

Every YAML document under deploy/kubernetes is accounted for: a kustomization or
component, a resource it lists, or a patch it applies. Built-in kinds are validated
strictly (unknown fields are errors) against the OpenAPI schemas that
``kubernetes-validate`` ships, for the oldest and a recent Kubernetes version we
support; the KEDA ScaledObject (a CRD) is checked structurally. Each kustomization is
rendered by a small kustomize of our own (resources, components, strategic-merge
patches, image overrides), so every patch must name an object that exists, and the
rendered objects are validated too. Where ``kubectl`` is installed, its built-in
kustomize renders the same directories and must agree; nothing depends on it.

Then the manifests are checked against the server itself: the probes' paths are routes
of ``create_app()``, the container port is ``TTS_PORT``, every ConfigMap value is a
valid setting, the autoscalers' queries name metrics ``/metrics`` really exposes, the
user is the Containerfile's, and the grace period outlasts preStop plus the drain.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from tts_trio.api.app import create_app
from tts_trio.observability import Metrics
from tts_trio.settings import DEFAULT_GRACEFUL_TIMEOUT, ENV_VARS, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
BASE = K8S / "base"
GPU = K8S / "overlays" / "gpu"
KEDA = K8S / "autoscaling" / "keda"
HPA = K8S / "autoscaling" / "hpa-prometheus-adapter"
#: The oldest Kubernetes the manifests are for, and a recent one (kubernetes-validate 1.37.0 ships 1.25-1.37).
K8S_VERSIONS = ("1.30.0", "1.34.0")
#: Kinds that are not built in: checked structurally below, never by kubernetes-validate.
CRD_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}
KUSTOMIZE_KINDS = {"Kustomization", "Component"}
#: The list-merge keys of the strategic-merge patches we use (Kubernetes' patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "envFrom": None,
    "volumes": "name",
    "volumeMounts": "name",
    "ports": "containerPort",
}
#: The renderings a user is told to apply: (kustomization, components added by their own overlay).
RENDERINGS: dict[str, tuple[Path, tuple[Path, ...]]] = {
    "base": (BASE, ()),
    "gpu": (GPU, ()),
    "base+keda": (BASE, (KEDA,)),
    "base+hpa": (BASE, (HPA,)),
    "gpu+keda": (GPU, (KEDA,)),
}

Obj = dict[str, Any]


# ------------------------------------------------------------------ loading


def load_documents(path: Path) -> list[Obj]:
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    assert documents, f"{path}: no YAML document"
    for doc in documents:
        assert isinstance(doc, dict), f"{path}: a document is not a mapping"
    return documents


def yaml_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())


def kustomization(directory: Path) -> Obj:
    (doc,) = load_documents(directory / "kustomization.yaml")
    assert doc["kind"] in KUSTOMIZE_KINDS
    return doc


def kustomization_dirs() -> list[Path]:
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


def key(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def is_builtin(obj: Obj) -> bool:
    return (obj["apiVersion"], obj["kind"]) not in CRD_KINDS and obj["kind"] not in KUSTOMIZE_KINDS


# ------------------------------------------------------------------ a small kustomize


def strategic_merge(base: Any, patch: Any, field: str | None = None) -> Any:
    """Kubernetes' strategic merge for what our patches use: maps merge, ``null`` deletes,
    lists with a merge key merge item by item (new items first, as kustomize puts them),
    other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for name, value in patch.items():
            if value is None:
                merged.pop(name, None)
            elif name in merged:
                merged[name] = strategic_merge(merged[name], value, name)
            else:
                merged[name] = copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and MERGE_KEYS.get(field or ""):
        merge_key = MERGE_KEYS[field or ""]
        merged_list = [copy.deepcopy(item) for item in base]
        added = []
        for item in patch:
            index = next((i for i, old in enumerate(merged_list) if old.get(merge_key) == item[merge_key]), None)
            if index is None:
                added.append(copy.deepcopy(item))
            else:
                merged_list[index] = strategic_merge(merged_list[index], item)
        return added + merged_list
    return copy.deepcopy(patch)


def apply_patches(objects: list[Obj], directory: Path, spec: Obj) -> list[Obj]:
    for entry in spec.get("patches", []):
        assert set(entry) <= {"path", "patch"}, f"{directory}: only plain strategic-merge patches are rendered here"
        patches = (
            load_documents(directory / entry["path"]) if "path" in entry else list(yaml.safe_load_all(entry["patch"]))
        )
        for patch in patches:
            targets = [i for i, obj in enumerate(objects) if key(obj) == key(patch)]
            assert len(targets) == 1, f"{directory}: patch {key(patch)} matches {len(targets)} objects, not one"
            target = objects[targets[0]]
            assert target["apiVersion"] == patch["apiVersion"], f"{directory}: patch {key(patch)}: apiVersion"
            objects[targets[0]] = strategic_merge(target, patch)
    return objects


def apply_images(objects: list[Obj], spec: Obj) -> list[Obj]:
    for image in spec.get("images", []):
        for obj in objects:
            for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    return objects


def render(directory: Path, components: tuple[Path, ...] = ()) -> list[Obj]:
    """What ``kubectl kustomize directory`` gives, for the features our kustomizations use."""
    spec = kustomization(directory)
    assert set(spec) <= {"apiVersion", "kind", "resources", "components", "patches", "images"}, directory
    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        objects.extend(render(path) if path.is_dir() else load_documents(path))
    for component in [directory / c for c in spec.get("components", [])] + list(components):
        component = component.resolve()
        component_spec = kustomization(component)
        assert component_spec["kind"] == "Component"
        objects.extend(
            doc for entry in component_spec.get("resources", []) for doc in load_documents(component / entry)
        )
        objects = apply_patches(objects, component, component_spec)
    objects = apply_patches(objects, directory, spec)
    objects = apply_images(objects, spec)
    keys = [key(obj) for obj in objects]
    assert len(keys) == len(set(keys)), f"{directory}: an object is defined twice"
    return objects


def find(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    matches = [obj for obj in objects if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)]
    assert len(matches) == 1, f"{kind} {name or ''}: {len(matches)} found"
    return matches[0]


def container(deployment: Obj) -> Obj:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def config_data(objects: list[Obj]) -> dict[str, str]:
    deployment = find(objects, "Deployment")
    (source,) = container(deployment)["envFrom"]
    data: dict[str, str] = find(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
    return data


# ------------------------------------------------------------------ what the server exposes


@pytest.fixture(scope="module")
def metric_names() -> set[str]:
    """Every sample name /metrics serves (the app's registry: Metrics(), what routes/pages.py exposes)."""
    exposition = Metrics().exposition().decode()
    names = {line.split()[2] for line in exposition.splitlines() if line.startswith("# TYPE ")}
    names |= {re.split(r"[{ ]", line)[0] for line in exposition.splitlines() if line and not line.startswith("#")}
    assert "tts_queue_depth" in names
    return names


@pytest.fixture(scope="module")
def get_routes(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    settings = Settings.load({"voices_path": tmp_path_factory.mktemp("voices")}, environ={})
    app = create_app(settings)
    return {rule.rule for rule in app.url_map.iter_rules() if "GET" in (rule.methods or ())}


def query_metrics(query: str) -> set[str]:
    """The metric names a PromQL query selects (ours all start with tts_)."""
    return set(re.findall(r"\b(tts_[a-zA-Z0-9_:]*)", query))


# ------------------------------------------------------------------ every file, every document


def test_every_yaml_document_is_accounted_for() -> None:
    used: set[Path] = set()
    for directory in kustomization_dirs():
        spec = kustomization(directory)
        used.add(directory / "kustomization.yaml")
        for entry in spec.get("resources", []) + spec.get("components", []):
            path = (directory / entry).resolve()
            assert path.exists(), f"{directory}: {entry} does not exist"
            if path.is_file():
                used.add(path)
            else:
                assert (path / "kustomization.yaml").is_file(), f"{directory}: {entry} has no kustomization.yaml"
        for entry in spec.get("patches", []):
            if "path" in entry:
                assert (directory / entry["path"]).is_file(), f"{directory}: patch {entry['path']} does not exist"
                used.add((directory / entry["path"]).resolve())
    assert {p.resolve() for p in yaml_files()} == used


def resource_files() -> list[Path]:
    """The files of whole objects: not kustomizations, not patches (partial objects, checked rendered)."""
    patches = {
        (d / e["path"]).resolve()
        for d in kustomization_dirs()
        for e in kustomization(d).get("patches", [])
        if "path" in e
    }
    return [p for p in yaml_files() if p.name != "kustomization.yaml" and p.resolve() not in patches]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", resource_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_resource_files_validate_strictly(path: Path, version: str) -> None:
    for doc in load_documents(path):
        assert (doc["apiVersion"], doc["kind"]) in CRD_KINDS or is_builtin(doc)
        if is_builtin(doc):
            kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_catches_a_misspelt_field() -> None:
    deployment = copy.deepcopy(find(render(BASE), "Deployment"))
    container(deployment)["readinesProbe"] = container(deployment).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", RENDERINGS)
def test_renderings_validate_strictly(name: str, version: str) -> None:
    directory, components = RENDERINGS[name]
    objects = render(directory, components)
    for obj in objects:
        if is_builtin(obj):
            kubernetes_validate.validate(obj, version, strict=True)
        else:
            assert (obj["apiVersion"], obj["kind"]) in CRD_KINDS, key(obj)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (optional cross-check)")
@pytest.mark.parametrize("name", RENDERINGS)
def test_kubectl_kustomize_agrees(name: str, tmp_path: Path) -> None:
    directory, components = RENDERINGS[name]
    if components:  # an overlay of the user's own, as docs/kubernetes.md shows
        overlay = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(directory, tmp_path)],
            "components": [os.path.relpath(c, tmp_path) for c in components],
        }
        (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
        directory = tmp_path
    built = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    theirs = {key(doc): doc for doc in yaml.safe_load_all(built) if doc}
    ours = {key(doc): doc for doc in render(*RENDERINGS[name])}
    assert theirs == ours


# ------------------------------------------------------------------ the Deployment and the server


@pytest.mark.parametrize("name", ["base", "gpu"])
def test_probes_and_port_match_the_server(name: str, get_routes: set[str]) -> None:
    objects = render(RENDERINGS[name][0])
    server = container(find(objects, "Deployment"))
    settings = Settings.load(environ=config_data(objects))
    (port,) = server["ports"]
    assert port == {"name": "http", "containerPort": settings.port, "protocol": "TCP"}
    assert settings.host == "0.0.0.0"
    paths = {}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = server[probe]["httpGet"]
        assert check["port"] in {"http", settings.port}
        assert check["path"] in get_routes, f"{probe}: {check['path']} is not a route"
        paths[probe] = check["path"]
    assert paths == {"startupProbe": "/ready", "readinessProbe": "/ready", "livenessProbe": "/health"}
    # Liveness must not restart a replica that is only busy: a minute at least.
    live = server["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 60
    service = find(objects, "Service")
    (service_port,) = service["spec"]["ports"]
    assert service_port["port"] == 80 and service_port["targetPort"] == "http"
    assert service["spec"]["type"] == "ClusterIP"


@pytest.mark.parametrize("name", ["base", "gpu"])
def test_config_map_holds_valid_settings(name: str) -> None:
    data = config_data(render(RENDERINGS[name][0]))
    assert set(data) <= set(ENV_VARS.values()), f"unknown variables: {set(data) - set(ENV_VARS.values())}"
    assert all(isinstance(value, str) for value in data.values())
    settings = Settings.load(environ=data)
    assert settings.log_format == "json"
    assert str(settings.voices_path) == "/data/voices"
    assert settings.slots is not None, "os.cpu_count() sees the node, not the pod's CPU limit: set TTS_SLOTS"


@pytest.mark.parametrize("name", RENDERINGS)
def test_grace_period_outlasts_prestop_and_drain(name: str) -> None:
    objects = render(*RENDERINGS[name])
    deployment = find(objects, "Deployment")
    pre_stop = container(deployment)["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        sleep = float(pre_stop["sleep"]["seconds"])
    else:
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep"
        sleep = float(command[1])
    assert sleep >= 2, "the endpoint must have time to leave the Service before SIGTERM"
    graceful = Settings.load(environ=config_data(objects)).graceful_timeout or DEFAULT_GRACEFUL_TIMEOUT
    # A margin for stopping the engine workers after the drain.
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= sleep + graceful + 5


def test_security_context_is_the_containerfile_user() -> None:
    containerfile = (ROOT / "Containerfile").read_text(encoding="utf-8")
    (user,) = re.findall(r"^USER (\d+):(\d+)\s*$", containerfile, re.MULTILINE)
    uid, gid = int(user[0]), int(user[1])
    for name in ("base", "gpu"):
        pod = find(render(RENDERINGS[name][0]), "Deployment")["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["enableServiceLinks"] is False  # a Service named "tts" would otherwise set TTS_PORT
        server = pod["containers"][0]
        assert server["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert server["securityContext"]["allowPrivilegeEscalation"] is False
        assert server["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], "a read-only root needs a writable /tmp"


def test_voice_store_is_a_shared_claim() -> None:
    objects = render(BASE)
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    voices_path = config_data(objects)["TTS_VOICES_PATH"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == voices_path]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = find(objects, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert "storageClassName" not in claim["spec"], "left to the user (see the comment in pvc.yaml)"


def test_keys_come_from_an_optional_secret() -> None:
    objects = render(BASE)
    env = {e["name"]: e for e in container(find(objects, "Deployment"))["env"]}
    for name in ("TTS_API_KEYS", "TTS_ADMIN_KEYS"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["optional"] is True and ref["key"] == name
        secret = find(objects, "Secret", ref["name"])
        assert "REPLACE-ME" in secret["stringData"][name], "the example Secret's values must say to replace them"


def test_selectors_match_the_pods() -> None:
    objects = render(BASE)
    deployment = find(objects, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert find(objects, "Service")["spec"]["selector"].items() <= labels.items()
    assert find(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert labels["app"] == "tts-trio"  # the label the autoscalers' queries select on
    assert container(deployment)["image"] == "tts-trio:latest"
    assert container(deployment)["imagePullPolicy"] == "IfNotPresent"
    assert deployment["spec"]["replicas"] >= 2


def test_gpu_overlay() -> None:
    objects = render(GPU)
    base_deployment = find(render(BASE), "Deployment")
    deployment = find(objects, "Deployment")
    assert deployment["metadata"]["name"] == base_deployment["metadata"]["name"]
    server = container(deployment)
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert server["image"] != container(base_deployment)["image"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] and pod["tolerations"]
    # Merged, not replaced: the base's mounts, env and probes are still there.
    assert {m["mountPath"] for m in container(base_deployment)["volumeMounts"]} < {
        m["mountPath"] for m in server["volumeMounts"]
    }
    assert {e["name"] for e in container(base_deployment)["env"]} < {e["name"] for e in server["env"]}
    assert server["readinessProbe"] == container(base_deployment)["readinessProbe"]
    data = config_data(objects)
    assert data["TTS_ENGINE"] == "piper" and data["TTS_SLOTS"]


# ------------------------------------------------------------------ autoscaling


def test_keda_scaled_object(metric_names: set[str]) -> None:
    objects = render(BASE, (KEDA,))
    deployment = find(objects, "Deployment")
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    scaled = find(objects, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert set(spec) <= {
        "scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod",
        "idleReplicaCount", "fallback", "advanced", "triggers", "initialCooldownPeriod",
    }  # fmt: skip
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tts-trio"}
    assert key(deployment) == ("Deployment", spec["scaleTargetRef"]["name"])
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    queried: set[str] = set()
    for trigger in spec["triggers"]:
        assert trigger["type"] == "prometheus"
        assert trigger.get("metricType", "AverageValue") in {"AverageValue", "Value"}
        metadata = trigger["metadata"]
        assert all(isinstance(value, str) for value in metadata.values()), "KEDA trigger metadata are strings"
        assert metadata["serverAddress"].startswith(("http://", "https://"))
        assert float(metadata["threshold"]) > 0
        names = query_metrics(metadata["query"])
        assert names and names <= metric_names, f"{metadata['query']}: not exposed: {names - metric_names}"
        assert 'app="tts-trio"' in metadata["query"]
        queried |= names
    assert "tts_queue_depth" in queried


def test_hpa_alternative(metric_names: set[str]) -> None:
    assert HPA.resolve() not in {
        (d / c).resolve() for d in kustomization_dirs() for c in kustomization(d).get("components", [])
    }, "the HPA alternative is opt-in"
    objects = render(BASE, (HPA,))
    hpa = find(objects, "HorizontalPodAutoscaler")
    assert "replicas" not in find(objects, "Deployment")["spec"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tts-trio"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "tts_queue_depth"
    assert metric["pods"]["metric"]["name"] in metric_names
    # The adapter rule in the comment names the same series.
    text = (HPA / "hpa-prometheus-adapter.yaml").read_text(encoding="utf-8")
    assert "seriesQuery: 'tts_queue_depth{" in text
