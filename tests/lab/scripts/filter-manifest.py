"""Keep, from `istioctl manifest generate` output (as kubectl JSON), what an installed Istio
control plane leaves in a cluster that meshguard.egress reads or changes; print them as one JSON
List for `kubectl apply -f -`.

Kept: the mesh ConfigMaps (`istio`, `istio-<rev>`), istiod's ServiceAccount, Service and
Deployment, and the validating webhook configurations only when they call istiod by URL
(values.base.validationURL, the lab's real istiod on loopback). Dropped: webhook
configurations that name the istiod Service (it has no real endpoint in the lab: the API
server would try to reach a made-up pod IP), RBAC, and everything else.
"""
import json
import re
import sys

doc = json.load(sys.stdin)
items = doc.get("items", [doc]) if doc.get("kind") == "List" else [doc]
MESH_CM = re.compile(r"^istio(-[a-z0-9-]+)?$")
ISTIOD = re.compile(r"^istiod(-[a-z0-9-]+)?$")
kept = []
for obj in items:
    kind, name = obj.get("kind"), obj["metadata"]["name"]
    if kind == "ConfigMap" and MESH_CM.match(name) and "mesh" in obj.get("data", {}):
        kept.append(obj)
    elif kind in ("ServiceAccount", "Service", "Deployment") and ISTIOD.match(name):
        kept.append(obj)
    elif kind == "ValidatingWebhookConfiguration" and all(
        "url" in w.get("clientConfig", {}) and w.get("failurePolicy") == "Fail" for w in obj.get("webhooks", [])
    ):
        kept.append(obj)
if not any(o["kind"] == "ConfigMap" for o in kept):
    sys.exit("filter-manifest.py: no mesh ConfigMap in the istioctl output")
for obj in kept:
    obj["metadata"].setdefault("namespace", "istio-system")
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": kept}))
