"""cluster/: every manifest is valid, agrees with the others, and keeps secrets out of files.

KubeRay documents (RayCluster, RayJob, RayService) are validated offline against KubeRay's CRD
schemas in ``../shared/k8s-schemas`` (``$LEUKSEARCH_K8S_SCHEMAS`` names another folder), made
strict as the API server is under kubectl's default ``--validate=strict``: a field the schema
does not list is an error. Kubernetes' own kinds are checked against a table of required fields
and, where KubeRay's CRDs embed the core type's schema (pod templates, Service and
PersistentVolumeClaim specs), against that schema too. Then the references between documents,
the secret hygiene, the dashboard's exposure, the images and the RayJob's entrypoint (parsed by
leuksearch's own CLI parser). ``ray-cluster.yaml`` is validated against the schema that ships
with Ray; the Dockerfile is read as text. Broken copies of the real files show that each check
can fail.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from search.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
SCHEMAS_ENV = "LEUKSEARCH_K8S_SCHEMAS"
KUBERAY_KINDS = ("RayCluster", "RayJob", "RayService")
KUBERAY_API = "ray.io/v1"
PLACEHOLDER = "REPLACE_ME"  # the only value a Secret in cluster/ may hold
DATA_MOUNT = "/data"  # LEUKSEARCH_DATA in cluster/Dockerfile
RUNS_MOUNT = "/mnt/runs"  # Ray's experiment state (--storage-path), on shared storage
MIN_RAY_FOR_TOKENS = (2, 52)
EXPOSED = ("LoadBalancer", "NodePort")

# Secrets, ConfigMaps and claims a pod may use without a document in cluster/, because the user
# brings them; each must be named in cluster/README.md (checked). Empty today: every Secret is
# described, with placeholders, in cluster/secrets.example.yaml.
USER_PROVIDED: dict[str, frozenset[str]] = {
    "Secret": frozenset(),
    "ConfigMap": frozenset(),
    "PersistentVolumeClaim": frozenset(),
}


@dataclass(frozen=True)
class Builtin:
    """A Kubernetes built-in kind: its apiVersion, required fields, and allowed fields."""

    api_version: str
    required: tuple[str, ...]
    top_level: frozenset[str] = frozenset({"apiVersion", "kind", "metadata", "spec"})
    spec_keys: frozenset[str] | None = None  # None: no list here (a schema checks the spec)
    embedded: tuple[tuple[str, str], ...] = ()  # (path, core type) checked by its CRD schema


PV_SOURCES = frozenset({"nfs", "csi", "hostPath", "local", "cephfs", "iscsi", "fc", "rbd"})
_WORKLOAD = ("metadata.name", "spec.selector.matchLabels", "spec.template.metadata.labels")
_POD = ("spec.template.spec.containers",)
BUILTIN: dict[str, Builtin] = {
    "Secret": Builtin(
        "v1",
        ("metadata.name",),
        frozenset({"apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"}),
    ),
    "ConfigMap": Builtin(
        "v1",
        ("metadata.name",),
        frozenset({"apiVersion", "kind", "metadata", "data", "binaryData", "immutable"}),
    ),
    "Service": Builtin("v1", ("metadata.name", "spec.ports"), embedded=(("spec", "ServiceSpec"),)),
    "PersistentVolumeClaim": Builtin(
        "v1",
        ("metadata.name", "spec.accessModes", "spec.resources.requests.storage"),
        embedded=(("spec", "PersistentVolumeClaimSpec"),),
    ),
    "PersistentVolume": Builtin(
        "v1",
        ("metadata.name", "spec.capacity.storage", "spec.accessModes"),
        spec_keys=PV_SOURCES
        | {"capacity", "accessModes", "persistentVolumeReclaimPolicy", "storageClassName"}
        | {"mountOptions", "volumeMode", "nodeAffinity", "claimRef"},
    ),
    "StatefulSet": Builtin(
        "apps/v1",
        _WORKLOAD + _POD + ("spec.serviceName",),
        spec_keys=frozenset(
            {"replicas", "selector", "template", "volumeClaimTemplates", "serviceName"}
            | {"podManagementPolicy", "updateStrategy", "revisionHistoryLimit"}
            | {"minReadySeconds", "persistentVolumeClaimRetentionPolicy", "ordinals"}
        ),
        embedded=(("spec.template", "PodTemplateSpec"),),
    ),
    "Deployment": Builtin(
        "apps/v1",
        _WORKLOAD + _POD,
        spec_keys=frozenset(
            {"replicas", "selector", "template", "strategy", "minReadySeconds"}
            | {"revisionHistoryLimit", "paused", "progressDeadlineSeconds"}
        ),
        embedded=(("spec.template", "PodTemplateSpec"),),
    ),
    "NetworkPolicy": Builtin(
        "networking.k8s.io/v1",
        ("metadata.name", "spec.podSelector"),
        spec_keys=frozenset({"podSelector", "policyTypes", "ingress", "egress"}),
    ),
}
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I)
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|API_KEY|ACCESS_KEY", re.I)


# ---------------------------------------------------------------- loading


@dataclass
class Doc:
    """One YAML document of cluster/: its file, position and body."""

    file: str
    index: int
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind"))

    @property
    def name(self) -> str:
        return str(get(self.body, "metadata.name"))

    @property
    def where(self) -> str:
        return f"{self.file}#{self.index} {self.kind}/{self.name}"


def load_docs() -> list[Doc]:
    """Every document of cluster/*.yaml but ray-cluster.yaml (`ray up`'s own format)."""
    docs = []
    for path in sorted(CLUSTER.glob("*.yaml")):
        if path.name != "ray-cluster.yaml":
            bodies = yaml.safe_load_all(path.read_text())
            docs += [Doc(path.name, i, b) for i, b in enumerate(bodies) if b is not None]
    return docs


def strict(node: Any) -> Any:
    """The schema with ``additionalProperties: false`` wherever it lists ``properties`` and
    says nothing else: Kubernetes' strict field validation, for a plain JSON-Schema validator."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items() if k != "properties"}
    if "properties" in node:
        out["properties"] = {name: strict(s) for name, s in node["properties"].items()}
        open_ended = node.get("x-kubernetes-preserve-unknown-fields")
        if "additionalProperties" not in node and not open_ended:
            out["additionalProperties"] = False
    return out


@dataclass
class Schemas:
    """KubeRay's resource schemas by kind, and the core types its CRDs embed."""

    kuberay: dict[str, dict[str, Any]]
    core: dict[str, dict[str, Any]]


def load_schemas(folder: Path) -> Schemas:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    kuberay = {}
    for path in sorted(folder.glob("ray.io_*.yaml")):
        crd = yaml.load(path.read_text(), Loader=loader)  # a safe loader
        (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        kuberay[crd["spec"]["names"]["kind"]] = strict(v1["schema"]["openAPIV3Schema"])
    head = get(kuberay["RayCluster"], "properties.spec.properties.headGroupSpec.properties")
    volume = get(head, "template.properties.spec.properties.volumes.items")
    claim = get(volume, "properties.ephemeral.properties.volumeClaimTemplate")
    core = {
        "PodTemplateSpec": head["template"],
        "ServiceSpec": get(head, "headService.properties.spec"),
        "PersistentVolumeClaimSpec": claim["properties"]["spec"],
        "PersistentVolumeClaimTemplate": claim,
    }
    return Schemas(kuberay, core)


# ---------------------------------------------------------------- small helpers


def get(node: Any, path: str, default: Any = None) -> Any:
    """``node`` at a dotted path; list items by index or, for named items, by name."""
    for key in path.split("."):
        if isinstance(node, list):
            named = [x for x in node if isinstance(x, dict) and x.get("name") == key]
            node = (
                node[int(key)]
                if key.isdigit() and int(key) < len(node)
                else named[0]
                if named
                else None
            )
        elif isinstance(node, dict):
            node = node.get(key)
        else:
            node = None
        if node is None:
            return default
    return node


def schema_errors(schema: dict[str, Any], instance: Any, where: str) -> list[str]:
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(instance), key=str)
    return [f"{where}: {e.json_path.removeprefix('$')}: {e.message}" for e in errors]


def cluster_specs(doc: Doc) -> list[tuple[str, dict[str, Any]]]:
    """(path, RayClusterSpec) of a KubeRay document."""
    path = {"RayCluster": "spec", "RayJob": "spec.rayClusterSpec"}.get(doc.kind)
    path = path or ("spec.rayClusterConfig" if doc.kind == "RayService" else None)
    spec = get(doc.body, path) if path else None
    return [(path, spec)] if isinstance(spec, dict) else []


def ray_pods(doc: Doc) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, 'head' or 'worker', pod spec) of every Ray pod of a KubeRay document."""
    for prefix, spec in cluster_specs(doc):
        if isinstance(get(spec, "headGroupSpec.template.spec"), dict):
            yield f"{prefix}.headGroupSpec", "head", spec["headGroupSpec"]["template"]["spec"]
        for i, group in enumerate(spec.get("workerGroupSpecs") or []):
            if isinstance(get(group, "template.spec"), dict):
                yield f"{prefix}.workerGroupSpecs.{i}", "worker", group["template"]["spec"]


def pods(doc: Doc) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, pod spec) of every pod a document defines."""
    for path, _role, spec in ray_pods(doc):
        yield path, spec
    for path in ("spec.template.spec", "spec.submitterPodTemplate.spec"):
        if isinstance(get(doc.body, path), dict):
            yield path, get(doc.body, path)


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod.get("initContainers") or []) + list(pod.get("containers") or [])


def by_name(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d.name: d for d in docs if d.kind == kind}


# ---------------------------------------------------------------- one document at a time


def document_problems(doc: Doc, schemas: Schemas | None) -> list[str]:
    out = []
    if not DNS_LABEL.match(doc.name):
        out.append(f"{doc.where}: metadata.name must be a DNS label")
    for key in ("labels", "annotations"):
        for k, v in (get(doc.body, f"metadata.{key}") or {}).items():
            if not isinstance(v, str):
                out.append(f"{doc.where}: metadata.{key}.{k} must be a string")
    if doc.kind in KUBERAY_KINDS:
        if doc.body.get("apiVersion") != KUBERAY_API:
            out.append(f"{doc.where}: apiVersion must be {KUBERAY_API}")
        if schemas is not None and doc.kind not in schemas.kuberay:
            out.append(f"{doc.where}: no CRD schema for kind {doc.kind}")
        elif schemas is not None:
            out += schema_errors(schemas.kuberay[doc.kind], doc.body, doc.where)
        return out
    if doc.kind not in BUILTIN:
        return out + [f"{doc.where}: unknown kind {doc.kind!r} (add it to BUILTIN)"]
    return out + builtin_problems(doc, BUILTIN[doc.kind], schemas)


def builtin_problems(doc: Doc, rule: Builtin, schemas: Schemas | None) -> list[str]:
    out, spec = [], doc.body.get("spec") or {}
    if doc.body.get("apiVersion") != rule.api_version:
        out.append(f"{doc.where}: apiVersion must be {rule.api_version}")
    out += [
        f"{doc.where}: {p} is required" for p in rule.required if get(doc.body, p) in (None, "", [])
    ]
    out += [f"{doc.where}: unknown field {k!r}" for k in sorted(set(doc.body) - rule.top_level)]
    if rule.spec_keys is not None:
        out += [f"{doc.where}: unknown field spec.{k}" for k in sorted(set(spec) - rule.spec_keys)]
    if doc.kind == "PersistentVolume" and len(set(spec) & PV_SOURCES) != 1:
        out.append(f"{doc.where}: spec needs exactly one volume source")
    selector, labels = get(spec, "selector.matchLabels"), get(spec, "template.metadata.labels")
    if isinstance(selector, dict) and any((labels or {}).get(k) != v for k, v in selector.items()):
        out.append(f"{doc.where}: spec.selector does not match the template's labels")
    if schemas is not None:
        for path, core in rule.embedded:
            if get(doc.body, path) is not None:
                out += schema_errors(schemas.core[core], get(doc.body, path), f"{doc.where} {path}")
        for i, claim in enumerate(spec.get("volumeClaimTemplates") or []):
            where = f"{doc.where} spec.volumeClaimTemplates.{i}"
            out += schema_errors(schemas.core["PersistentVolumeClaimTemplate"], claim, where)
    return out


# ---------------------------------------------------------------- references between documents


def reference_problems(docs: list[Doc]) -> list[str]:
    """Every claim, Secret (with its key) and ConfigMap a pod uses is defined in cluster/."""
    have = {k: by_name(docs, k) for k in ("PersistentVolumeClaim", "Secret", "ConfigMap")}
    out: list[str] = []

    def need(kind: str, name: Any, where: str, key: str | None = None) -> None:
        if name in USER_PROVIDED[kind]:
            return
        if name not in have[kind]:
            out.append(f"{where}: {kind} {name!r} is not defined in cluster/")
            return
        body = have[kind][name].body
        keys = set(body.get("data") or {}) | set(body.get("stringData") or {})
        if key is not None and key not in keys:
            out.append(f"{where}: {kind} {name!r} has no key {key!r}")

    for doc in docs:
        for _path, spec in cluster_specs(doc):
            if get(spec, "authOptions.secretName"):
                need("Secret", spec["authOptions"]["secretName"], doc.where, "auth_token")
        templates = {
            get(c, "metadata.name") for c in get(doc.body, "spec.volumeClaimTemplates", [])
        }
        for path, pod in pods(doc):
            out += pod_references(pod, f"{doc.where} {path}", templates, need)
        if doc.kind == "PersistentVolumeClaim":
            out += claim_binding_problems(doc, by_name(docs, "PersistentVolume"))
    return out


VOLUME_REFS = (
    ("PersistentVolumeClaim", "persistentVolumeClaim.claimName"),
    ("Secret", "secret.secretName"),
    ("ConfigMap", "configMap.name"),
)


def pod_references(pod: dict[str, Any], where: str, templates: set[Any], need: Any) -> list[str]:
    out = []
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    refs = [
        (kind, get(v, path))
        for v in volumes.values()
        for kind, path in VOLUME_REFS
        if path.split(".")[0] in v
    ]
    refs += [
        (kind, get(source, f"{key}.name"))
        for v in volumes.values()
        for source in get(v, "projected.sources", [])
        for kind, key in (("Secret", "secret"), ("ConfigMap", "configMap"))
        if key in source
    ]
    for kind, name in refs:
        need(kind, name, where)
    for ref in pod.get("imagePullSecrets") or []:
        need("Secret", ref.get("name"), where)
    for c in containers(pod):
        at = f"{where} container {c.get('name')}"
        for mount in c.get("volumeMounts") or []:
            if mount["name"] not in volumes and mount["name"] not in templates:
                out.append(f"{at}: volumeMount {mount['name']!r} names no volume")
        for env in c.get("env") or []:
            for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                if ref := get(env, f"valueFrom.{key}"):
                    need(kind, ref.get("name"), f"{at} env {env['name']}", ref.get("key"))
        for source in c.get("envFrom") or []:
            for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if key in source:
                    need(kind, get(source, f"{key}.name"), at)
    return out


def claim_binding_problems(claim: Doc, volumes: dict[str, Doc]) -> list[str]:
    name = get(claim.body, "spec.volumeName")
    if name is None:
        return []
    if name not in volumes:
        return [f"{claim.where}: PersistentVolume {name!r} is not defined in cluster/"]
    pv, spec, out = volumes[name].body["spec"], claim.body["spec"], []
    if not set(spec.get("accessModes") or []) <= set(pv.get("accessModes") or []):
        out.append(f"{claim.where}: access modes not offered by PersistentVolume {name!r}")
    if spec.get("storageClassName") != pv.get("storageClassName"):
        out.append(f"{claim.where}: storageClassName differs from PersistentVolume {name!r}")
    return out


# ---------------------------------------------------------------- secrets and exposure


def secret_problems(docs: list[Doc]) -> list[str]:
    """No secret in a manifest: Secrets hold placeholders, env values hold no password."""
    out = []
    for doc in docs:
        if doc.kind == "Secret":
            values = dict(doc.body.get("stringData") or {})
            values |= {
                k: base64.b64decode(v).decode(errors="replace")
                for k, v in (doc.body.get("data") or {}).items()
            }
            out += [
                f"{doc.where}: key {k!r} must hold the placeholder {PLACEHOLDER}"
                for k, v in values.items()
                if v != PLACEHOLDER
            ]
        for path, pod in pods(doc):
            for c in containers(pod):
                for env in c.get("env") or []:
                    out += env_problems(env, f"{doc.where} {path} container {c.get('name')}")
    return out


def env_problems(env: dict[str, Any], where: str) -> list[str]:
    name, value, out = env.get("name", ""), env.get("value"), []
    if value is None:
        return out
    if SECRET_NAME.search(name) and not re.search(r"_(PATH|FILE)$", name):
        out.append(f"{where}: env {name} has a literal value; take it from a Secret")
    if URL_WITH_PASSWORD.search(str(value)):
        out.append(f"{where}: env {name} holds a password in a URL")
    if name == "POSTGRES_HOST_AUTH_METHOD" and str(value).lower() == "trust":
        out.append(f"{where}: POSTGRES_HOST_AUTH_METHOD=trust; use password authentication")
    return out


def exposure_problems(docs: list[Doc]) -> list[str]:
    """Nothing, the Ray dashboard least of all, is published outside the cluster network."""
    out = []
    for doc in docs:
        if doc.kind == "Service" and get(doc.body, "spec.type") in EXPOSED:
            out.append(f"{doc.where}: a {doc.body['spec']['type']} Service leaves the cluster")
        if doc.kind == "Service" and get(doc.body, "spec.externalIPs"):
            out.append(f"{doc.where}: externalIPs publish the Service")
        for prefix, spec in cluster_specs(doc):
            head, where = spec.get("headGroupSpec") or {}, f"{doc.where} {prefix}.headGroupSpec"
            for path in ("serviceType", "headService.spec.type"):
                if get(head, path) in EXPOSED:
                    out.append(f"{where}.{path}: the dashboard must stay on the cluster network")
            if head.get("enableIngress"):
                out.append(f"{where}.enableIngress: the dashboard must not get an Ingress")
    return out


# ---------------------------------------------------------------- the Ray clusters


def ray_cluster_problems(docs: list[Doc], dockerfile: str, version: str) -> list[str]:
    """Token auth, autoscaler, GPUs, data and shared storage, one image, one Ray version."""
    ray_from = re.search(r"^FROM\s+rayproject/ray:(\d+\.\d+\.\d+)-", dockerfile, re.M)
    image_ray = ray_from.group(1) if ray_from else None
    claims = by_name(docs, "PersistentVolumeClaim")
    out, images, specs = [], set(), []
    for doc in docs:
        for prefix, spec in cluster_specs(doc):
            specs.append((f"{doc.where} {prefix}", spec))
            out += cluster_spec_problems(spec, specs[-1][0], image_ray)
            images |= {get(spec, "autoscalerOptions.image")} - {None}
        for path, role, pod in ray_pods(doc):
            images.add(get(pod, "containers.0.image"))
            out += ray_pod_problems(pod, role, f"{doc.where} {path}", claims)
        for path, pod in pods(doc):
            for image in (str(c.get("image")) for c in containers(pod)):
                if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                    out.append(f"{doc.where} {path}: image {image!r} needs a pinned tag")
    if len(images) > 1:
        out.append(f"the Ray pods must all run one image, found {sorted(map(str, images))}")
    out += [
        f"image {i!r}: tag it {version}, the package version"
        for i in images
        if not str(i).endswith(f":{version}")
    ]
    for where, spec in specs[1:]:
        if spec != specs[0][1]:
            out.append(f"{where} differs from {specs[0][0]}: keep the cluster specs identical")
    return out


def cluster_spec_problems(spec: dict[str, Any], where: str, image_ray: str | None) -> list[str]:
    out, ray_version = [], str(spec.get("rayVersion", ""))
    if ray_version != image_ray:
        out.append(f"{where}.rayVersion {ray_version!r} is not the Dockerfile's Ray {image_ray}")
    if tuple(int(p) for p in re.findall(r"\d+", ray_version)[:2]) < MIN_RAY_FOR_TOKENS:
        out.append(f"{where}.rayVersion: token authentication needs Ray >= 2.52")
    if get(spec, "authOptions.mode") != "token":
        out.append(f"{where}.authOptions.mode must be 'token' (Ray token authentication)")
    groups = spec.get("workerGroupSpecs") or []
    if any(g.get("maxReplicas") != g.get("minReplicas") for g in groups):
        if spec.get("enableInTreeAutoscaling") is not True:
            out.append(f"{where}: maxReplicas above minReplicas needs enableInTreeAutoscaling")
    if not any(
        "nvidia.com/gpu" in get(g, "template.spec.containers.0.resources.limits", {})
        for g in groups
    ):
        out.append(f"{where}: no worker group has an nvidia.com/gpu limit")
    return out


def ray_pod_problems(
    pod: dict[str, Any], role: str, where: str, claims: dict[str, Doc]
) -> list[str]:
    out, ray = [], get(pod, "containers.0", {})
    limits, requests = get(ray, "resources.limits", {}), get(ray, "resources.requests", {})
    if "nvidia.com/gpu" in requests and requests["nvidia.com/gpu"] != limits.get("nvidia.com/gpu"):
        out.append(f"{where}: nvidia.com/gpu requests must equal its limits")
    mounts = {m["mountPath"]: m for m in ray.get("volumeMounts") or []}

    def modes_at(path: str) -> list[str]:
        volume = get(pod, f"volumes.{get(mounts, f'{path}.name', '-')}", {})
        claim = claims.get(get(volume, "persistentVolumeClaim.claimName", "-"))
        return get(claim.body, "spec.accessModes", []) if claim else []

    if "ReadOnlyMany" not in modes_at(DATA_MOUNT) or not get(mounts, f"{DATA_MOUNT}.readOnly"):
        out.append(
            f"{where}: the datasets must be a ReadOnlyMany claim mounted read-only at {DATA_MOUNT}"
        )
    if "ReadWriteMany" not in modes_at(RUNS_MOUNT):
        out.append(f"{where}: {RUNS_MOUNT} must be a ReadWriteMany claim (--storage-path)")
    if role == "head" and get(ray, "env.LEUKSEARCH_DB") is None:
        out.append(f"{where}: the head runs the driver and needs LEUKSEARCH_DB")
    return out


def rayjob_problems(docs: list[Doc], workdir: str) -> list[str]:
    """A RayJob runs `leuksearch run|resume` on its own cluster, once, then cleans up."""
    out = []
    for doc in (d for d in docs if d.kind == "RayJob"):
        spec = doc.body.get("spec") or {}
        argv = shlex.split(str(spec.get("entrypoint", "")))
        if argv[:1] != ["leuksearch"] or argv[1:2] not in (["run"], ["resume"]):
            out.append(f"{doc.where}: the entrypoint must be `leuksearch run` or `resume`")
            continue
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                args = build_parser().parse_args(argv[1:])
        except SystemExit:
            out.append(f"{doc.where}: entrypoint: {stderr.getvalue().strip().splitlines()[-1]}")
            continue
        if not args.address or args.address.startswith("ray://"):
            out.append(f"{doc.where}: the entrypoint needs --address auto (the job's cluster)")
        storage = getattr(args, "storage_path", None) or ""
        if args.command == "run" and not (storage + "/").startswith(RUNS_MOUNT + "/"):
            out.append(f"{doc.where}: --storage-path {storage!r} is not on the shared {RUNS_MOUNT}")
        space = getattr(args, "space", "")
        if space.startswith(workdir + "/") and not (ROOT / space[len(workdir) + 1 :]).is_file():
            out.append(f"{doc.where}: the space {space} is not in the repository")
        if (
            spec.get("shutdownAfterJobFinishes") is not True
            or "ttlSecondsAfterFinished" not in spec
        ):
            out.append(f"{doc.where}: set shutdownAfterJobFinishes and ttlSecondsAfterFinished")
        if spec.get("backoffLimit") != 0:
            out.append(f"{doc.where}: backoffLimit must be 0 (a retry reruns `leuksearch run`)")
        if "submissionMode" not in spec:
            out.append(f"{doc.where}: choose the submissionMode explicitly")
    return out


def manifest_problems(
    docs: list[Doc], schemas: Schemas | None, dockerfile: str, version: str
) -> list[str]:
    """Everything wrong with the documents of cluster/ (an empty list when all is well)."""
    workdir = re.search(r"^WORKDIR\s+(\S+)", dockerfile, re.M)
    out = [p for doc in docs for p in document_problems(doc, schemas)]
    out += reference_problems(docs) + secret_problems(docs) + exposure_problems(docs)
    out += ray_cluster_problems(docs, dockerfile, version)
    return out + rayjob_problems(docs, workdir.group(1) if workdir else "/nowhere")


# ---------------------------------------------------------------- ray up and the image


def ray_up_problems(config: dict[str, Any]) -> list[str]:
    schema = json.loads((resources.files("ray.autoscaler") / "ray-schema.json").read_text())
    out = schema_errors(schema, config, "ray-cluster.yaml")
    head = " ".join(config.get("head_start_ray_commands") or [])
    if not re.search(r"ray start --head\b.*--dashboard-host[= ]127\.0\.0\.1\b", head):
        out.append("ray-cluster.yaml: the head must start the dashboard on 127.0.0.1")
    docker = config.get("docker") or {}
    options = [
        str(o)
        for k in ("run_options", "head_run_options", "worker_run_options")
        for o in docker.get(k) or []
    ]
    if not any(re.fullmatch(r"(--env|-e)[= ]RAY_AUTH_MODE=token", o) for o in options):
        out.append("ray-cluster.yaml: every container needs --env RAY_AUTH_MODE=token")
    targets = {o.split()[-1].split(":", 1)[-1] for o in options if o.startswith("-v ")}
    if f"{DATA_MOUNT}:ro" not in targets:
        out.append(f"ray-cluster.yaml: mount the datasets read-only at {DATA_MOUNT}")
    if RUNS_MOUNT not in targets:
        out.append(f"ray-cluster.yaml: mount shared storage at {RUNS_MOUNT} (--storage-path)")
    commands = [c for k, v in config.items() if k.endswith("_commands") for c in v or []]
    for text in options + commands:
        plain = text.replace("TOKEN_PATH=", "")
        if URL_WITH_PASSWORD.search(text) or re.search(r"\w*(PASSWORD|TOKEN|SECRET)\w*=\S", plain):
            out.append(f"ray-cluster.yaml: a secret in {text!r}; use an env file or a file mount")
    return out


def dockerfile_problems(text: str, dockerignore: str) -> list[str]:
    out = []
    env = " ".join(re.findall(r"^(?:ENV|ARG)\s+((?:.*\\\n)*.*)", text, re.M))
    for name in re.findall(r"([A-Z_][A-Z0-9_]*)=", env):
        if SECRET_NAME.search(name) or name == "LEUKSEARCH_DB":
            out.append(f"Dockerfile: {name} must come from the environment at run time")
    for needed in ("HF_HUB_OFFLINE=1", f"LEUKSEARCH_DATA={DATA_MOUNT}", "RAY_AUTH_MODE=token"):
        if needed not in env:
            out.append(f"Dockerfile: ENV {needed} is missing")
    if re.search(r"^RUN\b.*\b(wget|curl|hf_hub_download|huggingface-cli)\b", text, re.M):
        out.append("Dockerfile: nothing but packages is downloaded (weights are mounted)")
    allowed = {line[1:].strip() for line in dockerignore.splitlines() if line.startswith("!")}
    for sources in re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)\s+\S+$", text, re.M):
        for source in set(sources.split()) - allowed:
            out.append(f"Dockerfile: COPY {source} is excluded by Dockerfile.dockerignore")
    for package in ("search", "leukmodels", "spaces"):
        if not re.search(rf"^COPY\s.*\b{package}\s+\./{package}$", text, re.M):
            out.append(f"Dockerfile: the image must contain {package}/")
    return out


# ---------------------------------------------------------------- fixtures and tests


@pytest.fixture(scope="module")
def schemas() -> Schemas:
    folder = Path(os.environ.get(SCHEMAS_ENV) or ROOT.parent / "shared" / "k8s-schemas")
    if not any(folder.glob("ray.io_*.yaml")):
        message = f"no KubeRay CRD schemas (ray.io_*.yaml) in {folder} (set ${SCHEMAS_ENV})"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"required in CI: {message}", pytrace=False)
        pytest.skip(message)
    return load_schemas(folder)


@pytest.fixture(scope="module")
def inputs() -> tuple[list[Doc], str, str]:
    """The documents of cluster/, the Dockerfile, and the package version."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version\s*=\s*"([^"]+)"', pyproject, re.M)
    assert version, "pyproject.toml has no version"
    return load_docs(), (CLUSTER / "Dockerfile").read_text(), version.group(1)


def test_cluster_manifests_validate(schemas: Schemas, inputs: tuple[list[Doc], str, str]) -> None:
    docs, dockerfile, version = inputs
    kinds = {d.kind for d in docs}
    assert {"RayJob", "RayCluster", "Secret", "PersistentVolumeClaim", "Service"} <= kinds
    assert manifest_problems(docs, schemas, dockerfile, version) == []


def test_cluster_manifests_agree_without_schemas(inputs: tuple[list[Doc], str, str]) -> None:
    """The checks that need no CRD, so that they run even where ../shared is missing."""
    docs, dockerfile, version = inputs
    assert manifest_problems(docs, None, dockerfile, version) == []
    readme = (CLUSTER / "README.md").read_text()
    assert all(name in readme for names in USER_PROVIDED.values() for name in names)


def test_cluster_ray_up_config_and_dockerfile() -> None:
    assert ray_up_problems(yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())) == []
    ignore = (CLUSTER / "Dockerfile.dockerignore").read_text()
    assert dockerfile_problems((CLUSTER / "Dockerfile").read_text(), ignore) == []


# ---------------------------------------------------------------- the checks can fail

JOB, RC, PG = (
    "RayJob/leuksearch-placement",
    "RayCluster/leuksearch",
    "StatefulSet/leuksearch-postgres",
)
HEAD = "spec.rayClusterSpec.headGroupSpec"
WORKER = "spec.rayClusterSpec.workerGroupSpecs.0"
HEAD_C, WORKER_C = f"{HEAD}.template.spec.containers.0", f"{WORKER}.template.spec.containers.0"
PG_C = "spec.template.spec.containers.0"


@dataclass(frozen=True)
class Break:
    """Change one field of one real document; the validator must name the fault."""

    target: str  # Kind/name
    path: str  # dotted, as get() reads it
    op: str  # set | del | rename | replace
    value: Any
    expected: str  # a fragment of one of the problems
    schemas: bool = False  # only the CRD schemas can see it


def apply(doc: dict[str, Any], b: Break) -> None:
    parent_path, _, key = b.path.rpartition(".")
    parent = get(doc, parent_path) if parent_path else doc
    if isinstance(parent, list):
        key = str(next(i for i, x in enumerate(parent) if str(i) == key or get(x, "name") == key))
        parent_index: Any = int(key)
    else:
        parent_index = key
    if b.op == "set":
        parent[parent_index] = b.value
    elif b.op == "del":
        del parent[parent_index]
    elif b.op == "rename":
        parent[b.value] = parent.pop(parent_index)
    else:  # replace: (old, new) inside a string
        parent[parent_index] = parent[parent_index].replace(*b.value)


BROKEN = {
    # the CRD schemas, strict
    "misspelt RayJob field": Break(
        JOB,
        "spec.shutdownAfterJobFinishes",
        "rename",
        "shutdownAfterJobFinish",
        "'shutdownAfterJobFinish' was unexpected",
        True,
    ),
    "misspelt pod field": Break(
        JOB, f"{HEAD_C}.volumeMounts", "rename", "volumeMount", "'volumeMount' was unexpected", True
    ),
    "missing required field": Break(
        JOB, f"{WORKER}.groupName", "del", None, "'groupName' is a required property", True
    ),
    "bad auth mode": Break(
        RC,
        "spec.authOptions.mode",
        "set",
        "tokens",
        "'tokens' is not one of ['disabled', 'token']",
        True,
    ),
    "misspelt Service field": Break(
        "Service/leuksearch-postgres",
        "spec.selector",
        "rename",
        "selectr",
        "'selectr' was unexpected",
        True,
    ),
    "misspelt StatefulSet pod field": Break(
        PG,
        f"{PG_C}.readinessProbe",
        "rename",
        "readynessProbe",
        "'readynessProbe' was unexpected",
        True,
    ),
    "misspelt claim template field": Break(
        PG,
        "spec.volumeClaimTemplates.0.spec.accessModes",
        "rename",
        "accessMode",
        "'accessMode' was unexpected",
        True,
    ),
    # the table of built-in kinds
    "PVC without a size": Break(
        "PersistentVolumeClaim/leuksearch-runs",
        "spec.resources",
        "del",
        None,
        "spec.resources.requests.storage is required",
    ),
    "old apiVersion": Break(PG, "apiVersion", "set", "apps/v1beta1", "apiVersion must be apps/v1"),
    "misspelt StatefulSet field": Break(
        PG, "spec.serviceName", "rename", "servicename", "unknown field spec.servicename"
    ),
    "selector off the labels": Break(
        PG, "spec.selector.matchLabels", "set", {"app": "x"}, "does not match the template's labels"
    ),
    "PV with two sources": Break(
        "PersistentVolume/leuksearch-runs",
        "spec.hostPath",
        "set",
        {"path": "/x"},
        "exactly one volume source",
    ),
    # references
    "undefined claim": Break(
        JOB,
        f"{WORKER}.template.spec.volumes.data.persistentVolumeClaim.claimName",
        "set",
        "leuksearch-datasets",
        "PersistentVolumeClaim 'leuksearch-datasets' is not defined",
    ),
    "undefined secret key": Break(
        JOB,
        f"{HEAD_C}.env.PGPASSWORD.valueFrom.secretKeyRef.key",
        "set",
        "pw",
        "Secret 'leuksearch-db' has no key 'pw'",
    ),
    "undefined auth secret": Break(
        "Secret/leuksearch-ray-auth",
        "metadata.name",
        "set",
        "ray-auth",
        "Secret 'leuksearch-ray-auth' is not defined",
    ),
    "mount of no volume": Break(
        JOB, f"{HEAD}.template.spec.volumes.shm", "del", None, "volumeMount 'shm' names no volume"
    ),
    "claim of no volume": Break(
        "PersistentVolumeClaim/leuksearch-data",
        "spec.volumeName",
        "set",
        "data",
        "PersistentVolume 'data' is not defined",
    ),
    # secrets
    "literal password": Break(
        JOB,
        f"{HEAD_C}.env.PGPASSWORD",
        "set",
        {"name": "PGPASSWORD", "value": "hunter2"},
        "env PGPASSWORD has a literal value",
    ),
    "password in the URL": Break(
        JOB,
        f"{HEAD_C}.env.LEUKSEARCH_DB.value",
        "set",
        "postgresql://leuksearch:hunter2@db/leuksearch",
        "holds a password in a URL",
    ),
    "trust authentication": Break(
        PG,
        f"{PG_C}.env.POSTGRES_HOST_AUTH_METHOD.value",
        "set",
        "trust",
        "POSTGRES_HOST_AUTH_METHOD=trust",
    ),
    "a real secret committed": Break(
        "Secret/leuksearch-db",
        "stringData.password",
        "set",
        "s3cr3t-pw",
        "must hold the placeholder",
    ),
    # exposure
    "dashboard on a LoadBalancer": Break(
        JOB,
        f"{HEAD}.serviceType",
        "set",
        "LoadBalancer",
        "the dashboard must stay on the cluster network",
    ),
    "dashboard with an Ingress": Break(
        RC, "spec.headGroupSpec.enableIngress", "set", True, "must not get an Ingress"
    ),
    "database on a NodePort": Break(
        "Service/leuksearch-postgres",
        "spec.type",
        "set",
        "NodePort",
        "a NodePort Service leaves the cluster",
    ),
    # the Ray clusters
    "token authentication off": Break(
        JOB, "spec.rayClusterSpec.authOptions", "del", None, "authOptions.mode must be 'token'"
    ),
    "maxReplicas without the autoscaler": Break(
        RC, "spec.enableInTreeAutoscaling", "set", False, "needs enableInTreeAutoscaling"
    ),
    "no GPU limit": Break(
        RC,
        "spec.workerGroupSpecs.0.template.spec.containers.0.resources",
        "set",
        {"limits": {"cpu": "16"}},
        "no worker group has an nvidia.com/gpu limit",
    ),
    "writable datasets": Break(
        JOB,
        f"{WORKER_C}.volumeMounts.0.readOnly",
        "del",
        None,
        f"mounted read-only at {DATA_MOUNT}",
    ),
    "another image": Break(
        JOB,
        f"{WORKER_C}.image",
        "set",
        "registry.example.com/leuksearch:0.0.9",
        "must all run one image",
    ),
    "unpinned image": Break(PG, f"{PG_C}.image", "set", "postgres:latest", "needs a pinned tag"),
    "drift between the RayJob and the RayCluster": Break(
        RC, "spec.workerGroupSpecs.0.maxReplicas", "set", 4, "keep the cluster specs identical"
    ),
    "head without a database": Break(
        JOB, f"{HEAD_C}.env.LEUKSEARCH_DB", "del", None, "needs LEUKSEARCH_DB"
    ),
    "another Ray version": Break(
        JOB, "spec.rayClusterSpec.rayVersion", "set", "2.50.0", "needs Ray >= 2.52"
    ),
    # the RayJob
    "unknown entrypoint option": Break(
        JOB,
        "spec.entrypoint",
        "replace",
        ("--storage-path", "--storage-pth"),
        "unrecognized arguments: --storage-pth",
    ),
    "storage not shared": Break(
        JOB, "spec.entrypoint", "replace", (RUNS_MOUNT, "/tmp/runs"), "is not on the shared"
    ),
    "driver in a Ray of its own": Break(
        JOB, "spec.entrypoint", "replace", ("--address auto", ""), "needs --address auto"
    ),
    "space not in the image": Break(
        JOB,
        "spec.entrypoint",
        "replace",
        ("attention_placement", "attention_placment"),
        "is not in the repository",
    ),
    "retries rerun the study": Break(JOB, "spec.backoffLimit", "set", 3, "backoffLimit must be 0"),
    "cluster kept forever": Break(
        JOB, "spec.shutdownAfterJobFinishes", "set", False, "set shutdownAfterJobFinishes"
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_cluster_validator_rejects_broken_copy(
    case: str, inputs: tuple[list[Doc], str, str], request: pytest.FixtureRequest
) -> None:
    b = BROKEN[case]
    found = request.getfixturevalue("schemas") if b.schemas else None
    docs, dockerfile, version = inputs
    broken = copy.deepcopy(docs)
    apply(next(d.body for d in broken if f"{d.kind}/{d.name}" == b.target), b)
    problems = manifest_problems(broken, found, dockerfile, version)
    assert any(b.expected in p for p in problems), problems


RAY_UP_BROKEN = {
    "dashboard on every interface": Break(
        "",
        "head_start_ray_commands.1",
        "replace",
        ("127.0.0.1", "0.0.0.0"),
        "dashboard on 127.0.0.1",
    ),
    "misspelt key": Break(
        "",
        "head_start_ray_commands",
        "rename",
        "head_start_ray_command",
        "'head_start_ray_command' was unexpected",
    ),
    "no token": Break("", "docker.run_options.5", "del", None, "RAY_AUTH_MODE=token"),
    "password on a command line": Break(
        "", "docker.head_run_options.0", "set", "--env PGPASSWORD=hunter2", "a secret in"
    ),
    "writable datasets": Break(
        "", "docker.run_options.2", "replace", (":ro", ""), "read-only at /data"
    ),
}


@pytest.mark.parametrize("case", sorted(RAY_UP_BROKEN))
def test_cluster_ray_up_checks_reject_broken_copy(case: str) -> None:
    config = yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())
    apply(config, RAY_UP_BROKEN[case])
    problems = ray_up_problems(config)
    assert any(RAY_UP_BROKEN[case].expected in p for p in problems), problems


DOCKERFILE_BROKEN = {  # (old, new, expected)
    "baked database URL": (
        "    RAY_AUTH_MODE=token\n",
        "    RAY_AUTH_MODE=token \\\n    LEUKSEARCH_DB=postgresql://x@db/x\n",
        "LEUKSEARCH_DB must come from",
    ),
    "another Ray": ("rayproject/ray:2.60.0-", "rayproject/ray:2.59.0-", "Dockerfile's Ray 2.59.0"),
    "online hub": ("    HF_HUB_OFFLINE=1 \\\n", "", "HF_HUB_OFFLINE=1 is missing"),
    "weights downloaded": (
        "USER ray\n",
        "USER ray\nRUN wget https://example.org/w.pt\n",
        "nothing but packages",
    ),
    "copy of an ignored file": (
        "COPY --chown=ray:users spaces",
        "COPY --chown=ray:users .venv",
        "COPY .venv is excluded",
    ),
}


@pytest.mark.parametrize("case", sorted(DOCKERFILE_BROKEN))
def test_cluster_dockerfile_checks_reject_broken_copy(
    case: str, inputs: tuple[list[Doc], str, str]
) -> None:
    old, new, expected = DOCKERFILE_BROKEN[case]
    docs, dockerfile, version = inputs
    assert old in dockerfile
    broken = dockerfile.replace(old, new, 1)
    ignore = (CLUSTER / "Dockerfile.dockerignore").read_text()
    problems = dockerfile_problems(broken, ignore) + ray_cluster_problems(docs, broken, version)
    assert any(expected in p for p in problems), problems
