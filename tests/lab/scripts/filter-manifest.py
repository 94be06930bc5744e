"""Keep, from `istioctl manifest generate` output (as kubectl JSON), what an installed Istio
control plane leaves in a cluster that meshguard.egress reads or changes; print them as one JSON
List for `kubectl apply -f -`.

Kept: the mesh ConfigMaps (`istio`, `istio-<rev>`), the injection templates
(`istio-sidecar-injector[-<rev>]`), istiod's ServiceAccount, Service and Deployment, and the
validating/mutating webhook configurations only when they call istiod by URL
(values.base.validationURL / values.istiodRemote.injectionURL: the lab's real istiod on
loopback). Dropped: webhook
configurations that name the istiod Service (it has no real endpoint in the lab: the API
server would try to reach a made-up pod IP), RBAC, and everything else.
"""
import copy
import json
import re
import sys


def documents(text):
    """The JSON documents of a stream (kubectl prints one per object, or a List)."""
    dec, pos = json.JSONDecoder(), 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        doc, pos = dec.raw_decode(text, pos)
        yield from doc["items"] if doc.get("kind") == "List" else [doc]


items = list(documents(sys.stdin.read()))

if len(sys.argv) == 3 and sys.argv[1] == "--gateway":
    # `lab.sh egress-gateway`: only the objects of Istio's own egress gateway NAME (what
    # istioctl's components.egressGateways installs), not the control plane around it.
    name = sys.argv[2]
    kinds = ("ServiceAccount", "Deployment", "Service", "Role", "RoleBinding")
    gw = [o for o in items if o["kind"] in kinds and o["metadata"]["name"] in (name, name + "-service-account", name + "-sds")]
    if not any(o["kind"] == "Deployment" for o in gw):
        sys.exit(f"filter-manifest.py: no Deployment {name} in the istioctl output")
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": gw}))
    sys.exit(0)
MESH_CM = re.compile(r"^istio(-[a-z0-9-]+)?$")
ISTIOD = re.compile(r"^istiod(-[a-z0-9-]+)?$")
INJECTOR_CM = re.compile(r"^istio-sidecar-injector(-[a-z0-9-]+)?$")
kept = []
for obj in items:
    kind, name = obj.get("kind"), obj["metadata"]["name"]
    if kind == "ConfigMap" and MESH_CM.match(name) and "mesh" in obj.get("data", {}):
        kept.append(obj)
    elif kind == "ConfigMap" and INJECTOR_CM.match(name) and "config" in obj.get("data", {}):
        kept.append(obj)
    elif kind in ("ServiceAccount", "Service", "Deployment") and ISTIOD.match(name):
        kept.append(obj)
    elif kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration") and all(
        "url" in w.get("clientConfig", {}) and w.get("failurePolicy") == "Fail" for w in obj.get("webhooks", [])
    ):
        kept.append(obj)
# The default revision's validator for objects without an istio.io/rev label
# (`istiod-default-validator`). A real install gets it from `istioctl tag` / the base chart's
# defaultrevision-validatingwebhookconfiguration.yaml, which istioctl manifest generate does
# not render; built here like that template: the same webhook, named validation.istio.io,
# for objects whose istio.io/rev label does not exist.

for obj in list(kept):
    if obj["kind"] == "ValidatingWebhookConfiguration" and obj["metadata"]["name"] == "istio-validator-istio-system":
        dflt = copy.deepcopy(obj)
        dflt["metadata"] = {"name": "istiod-default-validator", "labels": dict(obj["metadata"].get("labels", {}))}
        dflt["metadata"]["labels"]["istio.io/rev"] = "default"
        for hook in dflt["webhooks"]:
            hook["name"] = "validation.istio.io"
            hook["objectSelector"] = {"matchExpressions": [{"key": "istio.io/rev", "operator": "DoesNotExist"}]}
        kept.append(dflt)
if not any(o["kind"] == "ConfigMap" for o in kept):
    sys.exit("filter-manifest.py: no mesh ConfigMap in the istioctl output")
for obj in kept:
    if not obj["kind"].endswith("WebhookConfiguration"):
        obj["metadata"].setdefault("namespace", "istio-system")
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": kept}))
