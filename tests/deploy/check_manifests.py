"""What a reviewer checks by hand in deploy/kubernetes, checked on the rendered manifests.

    python check_manifests.py RENDERED.yaml ISTHMUS.toml DEPLOY_DIR

RENDERED.yaml is `kubectl kustomize deploy/kubernetes`; ISTHMUS.toml the gateway's
config in it; DEPLOY_DIR the repository's deploy/ (for the Dockerfiles). Prints one
line per check and every problem found; exit 1 when any.

Checks: every Service selects pods of some workload and its target ports are ports of
those pods; every Secret, ConfigMap and key a pod refers to is in the render; the
gateway's ports and probes are the ones isthmus.toml serves (listen.addr, [metrics]
/livez and /readyz), its config, plugins and cache are mounted where isthmus.toml looks,
its termination grace covers preStop plus listen.shutdown_grace, and its rollout never
lowers the ready count; the Reflex endpoints of isthmus.toml are exactly the
StatefulSet's pods under its headless Service; the Django and Redis URLs name Services
and ports that exist; every plugin isthmus.toml names is in the plugins ConfigMap or put
into the image by a Dockerfile; every pod meets the "restricted" Pod Security Standard
with a read-only root filesystem and resource requests and limits; every ConfigMap fits
etcd's 1 MiB.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import yaml

CONFIGMAP_MAX_BYTES = 1024 * 1024
# What client-side `kubectl apply` may store in its last-applied annotation.
ANNOTATIONS_MAX_BYTES = 256 * 1024
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}

problems: list[str] = []
notes: list[str] = []


def check(ok: bool, message: str) -> bool:
    if not ok:
        problems.append(message)
    return ok


def duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"cannot read the duration {text!r}")
    return float(match[1]) * units[match[2]]


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec.get("containers", [])


def container_ports(spec: dict) -> dict[str, int]:
    """Named ports (name -> number) and numbers (str(number) -> number) of the pod."""
    ports: dict[str, int] = {}
    for c in spec.get("containers", []):
        for p in c.get("ports", []):
            ports[str(p["containerPort"])] = p["containerPort"]
            if "name" in p:
                ports[p["name"]] = p["containerPort"]
    return ports


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def main() -> None:
    rendered, toml_path, deploy_dir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    objects = [o for o in yaml.safe_load_all(rendered.read_text()) if o]
    config = tomllib.loads(toml_path.read_text())
    by_kind: dict[str, dict[str, dict]] = {}
    for o in objects:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    workloads = [o for o in objects if o["kind"] in WORKLOAD_KINDS]
    configmaps, secrets = by_kind.get("ConfigMap", {}), by_kind.get("Secret", {})

    # --- Services select pods and target their ports -------------------------------
    for name, svc in by_kind.get("Service", {}).items():
        selector = svc["spec"].get("selector", {})
        selected = [w for w in workloads if matches(selector, w["spec"]["template"]["metadata"].get("labels", {}))]
        if not check(bool(selected), f"Service {name}: selector {selector} matches no pod template"):
            continue
        for w in selected:
            ports = container_ports(pod_spec(w))
            for p in svc["spec"]["ports"]:
                target = str(p.get("targetPort", p["port"]))
                check(
                    target in ports,
                    f"Service {name}: targetPort {target} is not a port of {w['kind']} {w['metadata']['name']}",
                )
    print(f"services: {len(by_kind.get('Service', {}))} select pods and target their ports")

    # --- NetworkPolicies select pods and name their ports ---------------------------
    for name, np in by_kind.get("NetworkPolicy", {}).items():
        selector = np["spec"]["podSelector"].get("matchLabels", {})
        selected = [w for w in workloads if matches(selector, w["spec"]["template"]["metadata"].get("labels", {}))]
        if selector:
            check(bool(selected), f"NetworkPolicy {name}: podSelector {selector} matches no pod template")
        for rule in np["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                peer_labels = peer.get("podSelector", {}).get("matchLabels", {})
                if peer_labels:
                    check(
                        any(
                            matches(peer_labels, w["spec"]["template"]["metadata"].get("labels", {})) for w in workloads
                        ),
                        f"NetworkPolicy {name}: from podSelector {peer_labels} matches no pod template",
                    )
            for w in selected:
                ports = container_ports(pod_spec(w))
                for p in rule.get("ports", []):
                    check(
                        str(p["port"]) in ports,
                        f"NetworkPolicy {name}: port {p['port']} is not a port of {w['metadata']['name']}",
                    )
    print(f"network policies: {len(by_kind.get('NetworkPolicy', {}))} select pods and name their ports")

    # --- references to Secrets and ConfigMaps -------------------------------------
    refs = 0
    for w in workloads:
        where = f"{w['kind']} {w['metadata']['name']}"
        spec = pod_spec(w)
        for c in containers(spec):
            for source in c.get("envFrom", []):
                for kind, pool in (("secretRef", secrets), ("configMapRef", configmaps)):
                    if kind in source:
                        refs += 1
                        check(
                            source[kind]["name"] in pool, f"{where}: {kind} {source[kind]['name']} is not in the render"
                        )
            for env in c.get("env", []):
                for kind, pool in (("secretKeyRef", secrets), ("configMapKeyRef", configmaps)):
                    ref = env.get("valueFrom", {}).get(kind)
                    if ref:
                        refs += 1
                        obj = pool.get(ref["name"])
                        if check(obj is not None, f"{where}: {kind} {ref['name']} is not in the render"):
                            keys = (
                                set(obj.get("data", {}))
                                | set(obj.get("stringData", {}))
                                | set(obj.get("binaryData", {}))
                            )
                            check(ref["key"] in keys, f"{where}: {ref['name']} has no key {ref['key']}")
        for v in spec.get("volumes", []):
            for kind, pool, key in (("configMap", configmaps, "name"), ("secret", secrets, "secretName")):
                if kind in v:
                    refs += 1
                    check(
                        v[kind][key] in pool, f"{where}: volume {v['name']}: {kind} {v[kind][key]} is not in the render"
                    )
    print(f"references: {refs} to Secrets and ConfigMaps, all in the render")

    # --- the gateway and its config ------------------------------------------------
    gateway = next(
        (w for w in workloads for c in w["spec"]["template"]["spec"]["containers"] if "serve" in c.get("args", [])),
        None,
    )
    if check(gateway is not None, "no workload runs `isthmus serve`"):
        check_gateway(gateway, config, configmaps, deploy_dir)

    # --- upstreams: Services, the Reflex StatefulSet -----------------------------
    services = by_kind.get("Service", {})
    for name, upstream in config["upstreams"].items():
        urls = upstream.get("endpoints") or [upstream["url"]]
        for url in urls:
            host, port = urlsplit(url).hostname or "", urlsplit(url).port
            labels = host.split(".")
            svc_name = labels[-1] if len(labels) == 2 else labels[0]
            svc = services.get(svc_name)
            if check(svc is not None, f"upstreams.{name}: {url} names no Service `{svc_name}`"):
                check(
                    any(p["port"] == port for p in svc["spec"]["ports"]),
                    f"upstreams.{name}: {url}: Service {svc_name} has no port {port}",
                )
        if "endpoints" in upstream:
            check_pool(name, upstream["endpoints"], by_kind.get("StatefulSet", {}), services)
    redis_url = config.get("redis", {}).get("url")
    reflex_redis = [
        e["value"]
        for w in workloads
        for c in containers(pod_spec(w))
        for e in c.get("env", [])
        if e["name"] == "REFLEX_REDIS_URL"
    ]
    redis_urls = ([redis_url] if redis_url else []) + reflex_redis
    for url in redis_urls:
        host, port = urlsplit(url).hostname, urlsplit(url).port or 6379
        svc = services.get(host or "")
        check(
            svc is not None and any(p["port"] == port for p in svc["spec"]["ports"]),
            f"{url}: no Service `{host}` with port {port}",
        )
    print(f"upstreams: {', '.join(config['upstreams'])} and {len(redis_urls)} Redis URLs name Services and ports")

    # --- Pod Security Standard "restricted", read-only roots, resources ----------
    for w in workloads:
        check_pod_security(f"{w['kind']} {w['metadata']['name']}", pod_spec(w))
    print(f'pod security: {len(workloads)} workloads meet "restricted", read-only roots, requests and limits')
    for w in workloads:
        for c in containers(pod_spec(w)):
            image = c["image"]
            check(
                ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"),
                f"{w['metadata']['name']}/{c['name']}: image {image} has no pinned tag",
            )

    # --- sizes ---------------------------------------------------------------------
    for name, cm in configmaps.items():
        size = sum(len(v.encode()) for v in cm.get("data", {}).values())
        size += sum(len(v) * 3 // 4 for v in cm.get("binaryData", {}).values())
        check(size <= CONFIGMAP_MAX_BYTES, f"ConfigMap {name}: {size} bytes, over etcd's {CONFIGMAP_MAX_BYTES}")
    for o in objects:
        applied = len(json.dumps(o, separators=(",", ":")))
        if applied > ANNOTATIONS_MAX_BYTES:
            notes.append(
                f"{o['kind']} {o['metadata']['name']}: {applied} bytes, over the {ANNOTATIONS_MAX_BYTES} of the "
                "annotation client-side apply writes: apply with --server-side (deploy/README.md does)"
            )
    print(f"sizes: {len(configmaps)} ConfigMaps within {CONFIGMAP_MAX_BYTES} bytes")


def check_gateway(gateway: dict, config: dict, configmaps: dict, deploy_dir: Path) -> None:
    spec = pod_spec(gateway)
    container = next(c for c in spec["containers"] if "serve" in c.get("args", []))
    ports = container_ports(spec)
    listen_port = int(config["listen"]["addr"].rsplit(":", 1)[1])
    check(
        ports.get("http") == listen_port,
        f"gateway: containerPort http is {ports.get('http')}, listen.addr's port is {listen_port}",
    )
    metrics = config.get("metrics")
    if check(metrics is not None, "isthmus.toml: no [metrics]: the probes have nothing to ask"):
        metrics_host, metrics_port = metrics["listen"].rsplit(":", 1)
        check(
            metrics_host not in ("127.0.0.1", "[::1]", "localhost"),
            f"[metrics] listen {metrics['listen']} is loopback: the kubelet cannot reach it",
        )
        check(
            metrics.get("allow_remote") is True, "[metrics] listen is not loopback: isthmus needs allow_remote = true"
        )
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
            got = container.get(probe, {}).get("httpGet", {})
            port = ports.get(str(got.get("port")), got.get("port"))
            check(got.get("path") == path, f"gateway {probe}: path {got.get('path')}, isthmus serves {path}")
            check(
                port == int(metrics_port),
                f"gateway {probe}: port {got.get('port')}, [metrics] listens on {metrics_port}",
            )
    # Termination: preStop sleep + shutdown_grace within terminationGracePeriodSeconds.
    grace = duration_seconds(config["listen"].get("shutdown_grace", "10s"))
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    sleep = 0.0
    if "exec" in pre_stop and pre_stop["exec"]["command"][:1] == ["sleep"]:
        sleep = float(pre_stop["exec"]["command"][1])
    elif "sleep" in pre_stop:
        sleep = float(pre_stop["sleep"]["seconds"])
    check(sleep > 0, "gateway: no preStop sleep; the Service may still send connections to a draining pod")
    termination = spec.get("terminationGracePeriodSeconds", 30)
    check(
        termination > sleep + grace,
        f"gateway: terminationGracePeriodSeconds {termination} must exceed "
        f"preStop {sleep:g} s + shutdown_grace {grace:g} s",
    )
    strategy = gateway["spec"].get("strategy", {})
    check(
        strategy.get("type") == "RollingUpdate"
        and strategy.get("rollingUpdate", {}).get("maxUnavailable") in (0, "0%"),
        "gateway: the rollout must be RollingUpdate with maxUnavailable 0",
    )
    # Mounts: the config file, the plugins folder and the cache where isthmus.toml says.
    args = container["args"]
    config_file = PurePosixPath(args[args.index("--config") + 1])
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    check(str(config_file) in mounts, f"gateway: nothing is mounted at {config_file} (--config)")
    base = config_file.parent
    routing = config["routing"]
    plugins_dir = base / routing.get("plugins_dir", "plugins")
    cache_dir = base / routing.get("cache_dir", str(PurePosixPath(routing.get("plugins_dir", "plugins")) / ".cache"))
    for what, path in (("plugins_dir", plugins_dir), ("cache_dir", cache_dir)):
        mount = mounts.get(str(path))
        if check(mount is not None, f"gateway: routing.{what} {path} is not a mounted volume"):
            check("emptyDir" in volumes[mount["name"]], f"gateway: routing.{what} {path} is not an emptyDir")
    check(not mounts.get(str(cache_dir), {}).get("readOnly"), f"gateway: the cache {cache_dir} is mounted read-only")
    # Plugins: each one named is in the plugins ConfigMap or put into an image.
    in_configmap = {
        k for name, cm in configmaps.items() if name.startswith("isthmus-plugins") for k in cm.get("binaryData", {})
    }
    in_images = set()
    for dockerfile in deploy_dir.rglob("Dockerfile"):
        in_images |= set(re.findall(r"/opt/isthmus/plugins/(\w+\.wasm)", dockerfile.read_text()))
        for names in re.findall(r"cp ((?:target/plugins/\w+\.wasm ?)+)/out/plugins/", dockerfile.read_text()):
            in_images |= {PurePosixPath(n).name for n in names.split()}
    entries = routing["routers"] + ([config["bridge"]["policy"]] if "bridge" in config else [])
    for entry in entries:
        plugin = entry["plugin"]
        if plugin.startswith("builtin:"):
            continue
        check(
            plugin in in_configmap or plugin in in_images,
            f"gateway: plugin {plugin} is neither in the isthmus-plugins ConfigMap nor copied into an image",
        )
    print(
        f"gateway: ports, probes /readyz and /livez on {metrics['listen'] if metrics else '?'}, "
        f"termination {termination} s > preStop {sleep:g} s + shutdown_grace {grace:g} s, mounts, "
        f"plugins ({len(in_configmap)} from the ConfigMap, {len(in_images)} from images)"
    )


def check_pool(name: str, endpoints: list[str], statefulsets: dict, services: dict) -> None:
    hosts = [urlsplit(e).hostname or "" for e in endpoints]
    sts_name = hosts[0].split(".")[0].rsplit("-", 1)[0] if hosts else ""
    sts = statefulsets.get(sts_name)
    if not check(sts is not None, f"upstreams.{name}: no StatefulSet `{sts_name}` for the endpoints {endpoints}"):
        return
    governing = sts["spec"]["serviceName"]
    replicas = sts["spec"].get("replicas", 1)
    port = urlsplit(endpoints[0]).port
    want = [f"http://{sts_name}-{i}.{governing}:{port}" for i in range(replicas)]
    check(
        endpoints == want,
        f"upstreams.{name}.endpoints {endpoints} must be the StatefulSet's {replicas} pods: {want} "
        "(change the list and spec.replicas together)",
    )
    svc = services.get(governing)
    if check(svc is not None, f"StatefulSet {sts_name}: its serviceName {governing} is not a Service"):
        check(
            svc["spec"].get("clusterIP") == "None",
            f"Service {governing} must be headless (clusterIP: None) for per-pod names",
        )
    ports = container_ports(pod_spec(sts))
    check(port in ports.values(), f"upstreams.{name}: port {port} is not a containerPort of {sts_name}")
    print(f"upstreams.{name}: {len(endpoints)} endpoints = the {replicas} pods of StatefulSet {sts_name} ({governing})")


def check_pod_security(where: str, spec: dict) -> None:
    pod = spec.get("securityContext", {})
    check(
        not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), f"{where}: host namespaces"
    )
    for v in spec.get("volumes", []):
        check("hostPath" not in v, f"{where}: volume {v['name']} is a hostPath")
    for c in containers(spec):
        ctx = c.get("securityContext", {})
        name = f"{where}/{c['name']}"
        check(ctx.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, f"{name}: runAsNonRoot is not true")
        check(ctx.get("runAsUser", pod.get("runAsUser", 1)) != 0, f"{name}: runs as user 0")
        check(ctx.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation is not false")
        check(ctx.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: capabilities are not drop [ALL]")
        check(not ctx.get("capabilities", {}).get("add"), f"{name}: adds capabilities")
        seccomp = ctx.get("seccompProfile", pod.get("seccompProfile", {})).get("type")
        check(seccomp in ("RuntimeDefault", "Localhost"), f"{name}: seccompProfile is {seccomp}")
        check(ctx.get("readOnlyRootFilesystem") is True, f"{name}: the root filesystem is writable")
        resources = c.get("resources", {})
        for kind in ("requests", "limits"):
            check(
                {"cpu", "memory"} <= set(resources.get(kind, {})),
                f"{name}: resources.{kind} lacks cpu or memory",
            )


if __name__ == "__main__":
    main()
    for note in notes:
        print(f"note: {note}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(f"check_manifests: {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)
