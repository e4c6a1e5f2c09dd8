#!/usr/bin/env python3
"""The Kubernetes manifests of deploy/k8s, checked offline.

For every overlay: `kubectl kustomize` renders it; each built-in kind passes
`kubernetes-validate --strict`; KEDA's objects validate against models generated from KEDA's
published CRDs (PyPI cloudcoil-models-keda), with unknown fields refused; then what schemas
cannot see: selectors match pod labels, the ScaledObject scales the worker Deployment on the
namespace's job queues over HTTP (so held chunks count), probes use the port of
VOLLEY_HTTP_ADDR, the grace period covers the drain and the longest request, pods fit the
"restricted" Pod Security Standard, and every Secret and ConfigMap a pod reads exists or is
the documented template. The producer Job template gets the same checks.

`--self-test` breaks rendered manifests on purpose and expects each break to be reported,
so a check that cannot fail is caught. Run by scripts/k8s-test.sh.
"""

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["small", "large", "try-it", "records-pending"]
KUBECTL = os.environ.get("KUBECTL", "kubectl")
VALIDATE = os.environ.get("KUBERNETES_VALIDATE", "kubernetes-validate")
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication", "ScaledJob", "ClusterTriggerAuthentication"}
# The longest request timeout the manifests are sized for (a spec's request.timeout).
LONGEST_REQUEST_S = 30


def render(overlay):
    out = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / "overlays" / overlay)],
        check=True, capture_output=True, text=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def load(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(text).strip())
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def pod_specs(docs):
    """(workload name, pod template metadata, pod spec) of every workload."""
    for d in docs:
        kind = d.get("kind")
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            t = d["spec"]["template"]
            yield d["metadata"].get("name") or d["metadata"].get("generateName"), t.get("metadata", {}), t["spec"]


def kubernetes_validate(docs, label):
    builtin = [d for d in docs if d.get("kind") not in KEDA_KINDS]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(builtin, f)
        path = f.name
    try:
        done = subprocess.run([VALIDATE, "--strict", "--quiet", path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    text = (done.stdout + done.stderr).strip()
    problems = []
    if done.returncode != 0 or "ERROR" in text or "WARN" in text:
        problems.append(f"{label}: kubernetes-validate --strict:\n{text}")
    return problems


def unknown_fields(given, dumped, path=""):
    """Keys of `given` that the model did not keep: fields KEDA's schema does not have."""
    out = []
    if isinstance(given, dict):
        if not isinstance(dumped, dict):
            return [path or "/"]
        for k, v in given.items():
            if k not in dumped:
                out.append(f"{path}/{k}")
            else:
                out.extend(unknown_fields(v, dumped[k], f"{path}/{k}"))
    elif isinstance(given, list) and isinstance(dumped, list):
        for i, (a, b) in enumerate(zip(given, dumped)):
            out.extend(unknown_fields(a, b, f"{path}/{i}"))
    return out


def keda_validate(docs, label):
    from cloudcoil.models.keda import v1alpha1 as keda

    problems = []
    for d in docs:
        kind = d.get("kind")
        if kind not in KEDA_KINDS:
            continue
        where = f"{label}: {kind}/{d['metadata'].get('name')}"
        if d.get("apiVersion") != "keda.sh/v1alpha1":
            problems.append(f"{where}: apiVersion {d.get('apiVersion')} is not keda.sh/v1alpha1")
            continue
        model = getattr(keda, kind)
        try:
            parsed = model.model_validate(d)
        except Exception as e:  # pydantic's ValidationError, named by its text
            problems.append(f"{where}: does not match KEDA's schema: {e}")
            continue
        dumped = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
        for field in unknown_fields(d, dumped):
            problems.append(f"{where}: {field} is not a field of KEDA's {kind}")
    return problems


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def semantic_checks(docs, label, secret_keys):
    problems = []
    say = lambda msg: problems.append(f"{label}: {msg}")  # noqa: E731
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"].get("name")] = d
    config = by_kind.get("ConfigMap", {}).get("volley-config", {}).get("data", {})
    pods = list(pod_specs(docs))
    pod_labels = [meta.get("labels", {}) for _, meta, _ in pods]

    # Selectors.
    for kind in ("Deployment", "StatefulSet"):
        for name, d in by_kind.get(kind, {}).items():
            sel = d["spec"]["selector"].get("matchLabels", {})
            labels = d["spec"]["template"]["metadata"].get("labels", {})
            if not labels_match(sel, labels):
                say(f"{kind}/{name}: selector {sel} does not match its pod labels {labels}")
            if kind == "StatefulSet" and d["spec"].get("serviceName") not in by_kind.get("Service", {}):
                say(f"StatefulSet/{name}: serviceName {d['spec'].get('serviceName')} is not a Service")
    for name, d in by_kind.get("PodDisruptionBudget", {}).items():
        sel = d["spec"]["selector"].get("matchLabels", {})
        if not any(labels_match(sel, l) for l in pod_labels):
            say(f"PodDisruptionBudget/{name}: selector {sel} matches no pod")
    for name, d in by_kind.get("Service", {}).items():
        spec = d["spec"]
        if spec.get("type") == "ExternalName":
            if not spec.get("externalName"):
                say(f"Service/{name}: ExternalName without externalName")
            continue
        if not any(labels_match(spec.get("selector", {}), l) for l in pod_labels):
            say(f"Service/{name}: selector {spec.get('selector')} matches no pod")

    # The worker: probes, ports, grace period.
    worker = by_kind.get("Deployment", {}).get("volley-worker")
    if worker is None:
        if label != "producer Job":
            say("no Deployment volley-worker")
    else:
        spec = worker["spec"]["template"]["spec"]
        c = spec["containers"][0]
        http_addr = config.get("VOLLEY_HTTP_ADDR", "")
        port = int(http_addr.rsplit(":", 1)[1]) if ":" in http_addr else None
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        if port is None or ports.get("http") != port:
            say(f"worker port 'http' {ports.get('http')} is not VOLLEY_HTTP_ADDR's port ({http_addr!r})")
        for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
            get = c.get(probe, {}).get("httpGet")
            if not get:
                say(f"worker has no HTTP {probe}")
                continue
            target = get.get("port")
            if (ports.get(target) if isinstance(target, str) else target) != port:
                say(f"worker {probe} asks port {target}, not VOLLEY_HTTP_ADDR's {port}")
            if get.get("path") != path:
                say(f"worker {probe} asks {get.get('path')}, not {path}")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        drain = seconds(config.get("VOLLEY_DRAIN_TIMEOUT", "30s"))
        if grace < drain + LONGEST_REQUEST_S + 5:
            say(
                f"worker grace period {grace} s does not cover the drain ({drain:.0f} s), the "
                f"longest request ({LONGEST_REQUEST_S} s) and a margin"
            )
        hold = seconds(config.get("VOLLEY_MAX_HOLD", "25m"))
        if hold >= 30 * 60:
            say(f"VOLLEY_MAX_HOLD {hold:.0f} s is not below RabbitMQ's 30 min consumer timeout")

    # KEDA: the right Deployment, the right queues, held chunks counted.
    for name, so in by_kind.get("ScaledObject", {}).items():
        ref = so["spec"]["scaleTargetRef"]
        if ref.get("kind", "Deployment") != "Deployment" or ref.get("name") not in by_kind.get("Deployment", {}):
            say(f"ScaledObject/{name} targets {ref}, which is not a Deployment here")
        if so["spec"].get("minReplicaCount", 0) > so["spec"].get("maxReplicaCount", 100):
            say(f"ScaledObject/{name}: minReplicaCount above maxReplicaCount")
        ns = config.get("VOLLEY_NAMESPACE", "volley")
        for t in so["spec"].get("triggers", []):
            if t.get("type") == "metrics-api":
                problems.extend(metrics_api_checks(label, name, t, so, by_kind))
                continue
            if t.get("type") != "rabbitmq":
                continue
            m = t.get("metadata", {})
            if m.get("protocol") != "http":
                say(f"ScaledObject/{name}: the rabbitmq trigger must use protocol http (AMQP counts no held chunks)")
            if str(m.get("excludeUnacknowledged", "false")).lower() == "true":
                say(f"ScaledObject/{name}: excludeUnacknowledged leaves held chunks out")
            prefetch = int(config.get("VOLLEY_PREFETCH", "8"))
            if int(m.get("value", "0")) > prefetch:
                say(
                    f"ScaledObject/{name}: target value {m.get('value')} above VOLLEY_PREFETCH "
                    f"({prefetch}) scales in a fleet whose workers all hold a full prefetch"
                )
            queue = m.get("queueName", "")
            if str(m.get("useRegex", "false")).lower() == "true":
                if not re.fullmatch(queue, f"{ns}.chunks.some-job"):
                    say(f"ScaledObject/{name}: queueName {queue!r} matches no job queue of namespace {ns!r}")
                if re.fullmatch(queue, f"{ns}.dead"):
                    say(f"ScaledObject/{name}: queueName {queue!r} counts the dead-letter queue")
                if m.get("operation") != "sum":
                    say(f"ScaledObject/{name}: job queues must be summed (operation: sum)")
            else:
                say(f"ScaledObject/{name}: one queue per job needs useRegex")
            auth = t.get("authenticationRef", {}).get("name")
            ta = by_kind.get("TriggerAuthentication", {}).get(auth)
            if ta is None:
                say(f"ScaledObject/{name}: authenticationRef {auth} is not a TriggerAuthentication here")
            else:
                for s in ta["spec"].get("secretTargetRef", []):
                    if s.get("key") not in secret_keys.get(s.get("name"), set()):
                        say(f"TriggerAuthentication/{auth}: secret {s.get('name')} has no key {s.get('key')}")

    # Pods: restricted Pod Security Standard, and what they read exists.
    for name, meta, spec in pods:
        problems.extend(restricted(label, name, spec))
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for src in c.get("envFrom", []):
                if "secretRef" in src and src["secretRef"]["name"] not in secret_keys:
                    say(f"{name}: Secret {src['secretRef']['name']} is neither rendered nor the template")
                if "configMapRef" in src and src["configMapRef"]["name"] not in by_kind.get("ConfigMap", {}) and label != "producer Job":
                    say(f"{name}: ConfigMap {src['configMapRef']['name']} is not rendered")
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["key"] not in secret_keys.get(ref["name"], set()):
                    say(f"{name}: Secret {ref['name']} has no key {ref['key']}")
    return problems


def metrics_api_checks(label, name, trigger, so, by_kind):
    """A metrics-api trigger must read the dashboard's /api/pending through a Service of
    this render, by a name the KEDA operator (in its own namespace) resolves."""
    from urllib.parse import urlparse

    problems = []
    say = lambda msg: problems.append(f"{label}: ScaledObject/{name}: {msg}")  # noqa: E731
    m = trigger.get("metadata", {})
    url = urlparse(m.get("url", ""))
    namespace = so["metadata"].get("namespace", "default")
    parts = (url.hostname or "").split(".")
    service = by_kind.get("Service", {}).get(parts[0])
    if len(parts) < 3 or parts[1] != namespace or parts[2] != "svc":
        say(f"metrics-api url {m.get('url')!r} is not <service>.{namespace}.svc[.cluster.local]")
    elif service is None:
        say(f"metrics-api url names Service {parts[0]}, which is not rendered")
    elif url.port not in [p["port"] for p in service["spec"].get("ports", [])]:
        say(f"metrics-api url port {url.port} is not a port of Service {parts[0]}")
    if url.path != "/api/pending" or m.get("valueLocation") != "records_pending":
        say("metrics-api must read records_pending from /api/pending")
    return problems


def restricted(label, name, spec):
    problems = []
    say = lambda msg: problems.append(f"{label}: {name}: {msg}")  # noqa: E731
    pod = spec.get("securityContext", {})
    if pod.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
        say("seccompProfile is not RuntimeDefault")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            say(f"container {c['name']}: allowPrivilegeEscalation is not false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            say(f"container {c['name']}: capabilities do not drop ALL")
        if not (sc.get("runAsNonRoot") or pod.get("runAsNonRoot")):
            say(f"container {c['name']}: runAsNonRoot is not set")
        if sc.get("runAsUser", pod.get("runAsUser")) == 0:
            say(f"container {c['name']}: runs as root")
        if sc.get("privileged"):
            say(f"container {c['name']}: privileged")
    for v in spec.get("volumes", []):
        if "hostPath" in v:
            say(f"volume {v['name']} is a hostPath")
    return problems


def secret_keys_of(docs, template):
    keys = {s["metadata"]["name"]: set(s.get("stringData", {})) | set(s.get("data", {})) for s in template}
    for d in docs:
        if d["kind"] == "Secret":
            keys[d["metadata"]["name"]] = set(d.get("stringData", {})) | set(d.get("data", {}))
    return keys


def check_all(rendered):
    template = load(K8S / "base" / "secret.template.yaml")
    problems = []
    for s in template:
        for k, v in s.get("stringData", {}).items():
            if "REPLACE-ME" not in v:
                problems.append(f"secret template: {k} holds a value, not a REPLACE-ME placeholder")
    for overlay, docs in rendered.items():
        label = f"overlay {overlay}"
        problems += kubernetes_validate(docs, label)
        problems += keda_validate(docs, label)
        problems += semantic_checks(docs, label, secret_keys_of(docs, template))
        if any(d["kind"] == "Secret" and d["metadata"]["name"] == "volley-connection" for d in docs) and overlay != "try-it":
            problems.append(f"{label}: renders the connection Secret; it must come from the template")
    job = load(K8S / "jobs" / "producer-job.yaml")
    problems += kubernetes_validate(job, "producer Job")
    problems += semantic_checks(job, "producer Job", secret_keys_of([], template))
    return problems


def self_test(rendered):
    """Each break must be reported; returns the breaks that were not."""

    def worker(docs):
        return next(d for d in docs if d["kind"] == "Deployment")

    def scaled(docs):
        return next(d for d in docs if d["kind"] == "ScaledObject")

    breaks = {
        "short grace period": lambda docs: worker(docs)["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=30),
        "probe on another port": lambda docs: worker(docs)["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"].update(port=8080),
        "selector mismatch": lambda docs: worker(docs)["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "other"}),
        "ScaledObject on a missing Deployment": lambda docs: scaled(docs)["spec"]["scaleTargetRef"].update(name="nope"),
        "AMQP trigger": lambda docs: scaled(docs)["spec"]["triggers"][0]["metadata"].update(protocol="amqp"),
        "queue regex of another namespace": lambda docs: scaled(docs)["spec"]["triggers"][0]["metadata"].update(queueName="^other\\.chunks\\..+$"),
        "unknown KEDA field": lambda docs: scaled(docs)["spec"].update(maxReplicas=3),
        "target above the prefetch": lambda docs: scaled(docs)["spec"]["triggers"][0]["metadata"].update(value="64"),
        "metrics-api url in another namespace": lambda docs: None,
        "wrong KEDA type": lambda docs: scaled(docs)["spec"].update(pollingInterval="often"),
        "unknown built-in field": lambda docs: worker(docs)["spec"].update(replica=3),
        "privilege escalation": lambda docs: worker(docs)["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
    }
    def pending_url(docs):
        scaled(docs)["spec"]["triggers"][0]["metadata"]["url"] = "http://volley-dashboard.other.svc.cluster.local:8686/api/pending"

    template = load(K8S / "base" / "secret.template.yaml")
    missed = []
    for what, brk in breaks.items():
        overlay = "small"
        if what == "metrics-api url in another namespace":
            overlay, brk = "records-pending", pending_url
        docs = copy.deepcopy(rendered[overlay])
        brk(docs)
        found = kubernetes_validate(docs, "x") + keda_validate(docs, "x") + semantic_checks(docs, "x", secret_keys_of(docs, template))
        if not found:
            missed.append(what)
        else:
            print(f"self-test: {what}: reported ({found[0].splitlines()[0][:110]})")
    return missed


def main():
    rendered = {o: render(o) for o in OVERLAYS}
    for o, docs in rendered.items():
        print(f"rendered overlay {o}: " + ", ".join(sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)))
    problems = check_all(rendered)
    if "--self-test" in sys.argv:
        missed = self_test(rendered)
        problems += [f"self-test: breaking the manifests with '{m}' was not reported" for m in missed]
    for p in problems:
        print(f"FAIL {p}")
    print(f"{'manifests OK' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
