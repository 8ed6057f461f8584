"""A stand-in for the Kubernetes API server that `kubectl apply --dry-run=client` needs.

A client-side dry run still asks the server two things: discovery (which group,
version and resource each kind maps to) and, for every object, a GET of its live
version (to choose between create and patch). With no cluster, kubectl stops at
"unable to recognize". This stub answers exactly those on 127.0.0.1: discovery for
the kinds in KINDS, and 404 NotFound for every object, so kubectl takes its real
client-side path and prints "created (dry run)" for each object. It never stores
anything and answers any write with 405 (a client-side dry run sends none).

    python3 stub_apiserver.py PORT_FILE    # serves until SIGTERM; writes its port

A kind missing from KINDS makes kubectl fail with "no matches for kind": add it here.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (group, version, kind, plural, namespaced): the kinds deploy/kubernetes may use.
KINDS = [
    ("", "v1", "Namespace", "namespaces", False),
    ("", "v1", "ConfigMap", "configmaps", True),
    ("", "v1", "Secret", "secrets", True),
    ("", "v1", "Service", "services", True),
    ("", "v1", "ServiceAccount", "serviceaccounts", True),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True),
    ("apps", "v1", "Deployment", "deployments", True),
    ("apps", "v1", "StatefulSet", "statefulsets", True),
    ("batch", "v1", "Job", "jobs", True),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True),
    ("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True),
    ("networking.k8s.io", "v1", "Ingress", "ingresses", True),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True),
]
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def resource_list(group: str, version: str) -> dict:
    group_version = f"{group}/{version}" if group else version
    resources = [
        {"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind, "verbs": VERBS}
        for g, v, kind, plural, namespaced in KINDS
        if (g, v) == (group, version)
    ]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def group_list() -> dict:
    groups: dict[str, list[str]] = {}
    for group, version, *_ in KINDS:
        if group and version not in groups.setdefault(group, []):
            groups[group].append(version)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": name,
                "versions": [{"groupVersion": f"{name}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{name}/{versions[0]}", "version": versions[0]},
            }
            for name, versions in groups.items()
        ],
    }


def not_found(path: str) -> dict:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"{path} not found (stub API server: nothing exists)",
        "reason": "NotFound",
        "details": {"name": name},
        "code": 404,
    }


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/api":
            self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        elif path == "/apis":
            self._send(200, group_list())
        elif path == "/api/v1":
            self._send(200, resource_list("", "v1"))
        elif path.startswith("/apis/") and path.count("/") == 3:
            _, _, group, version = path.split("/")
            body = resource_list(group, version)
            self._send(200 if body["resources"] else 404, body if body["resources"] else not_found(path))
        else:
            self._send(404, not_found(path))

    def _refuse(self) -> None:
        self._send(405, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 405})

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
