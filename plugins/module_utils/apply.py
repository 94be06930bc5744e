# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply, prune and tear down the objects of one meshguard.egress policy.

``apply_objects(client, objects, policy_name, components, ...)`` is the engine behind the
``meshguard.egress.egress_apply`` module:

1. **Check the input** (no request yet): every object carries this policy's ownership labels
   (``labels.py``) and a component the caller manages.
2. **Read** (concurrently, a few LIST requests per kind, never one GET per object): every
   object of every meshguard.egress policy of the kinds involved (``managed_selector()``),
   and every object, labelled or not, in the namespaces the objects go to.
3. **Refuse before writing anything** when an object of the same kind and name exists
   without this policy's labels (we never take over what we did not create), or when a host
   of ours is claimed by another policy's rule objects (annotation ``ANNOTATION_HOSTS``).
4. **Server-side apply** (field manager ``meshguard-egress``, strict field validation,
   conflicts reported unless ``force``) in phases that work on an empty cluster:
   namespaces, the gateway workload, AuthorizationPolicies (so that a route never exists
   before the policy that guards it), then the other Istio objects and NetworkPolicies;
   concurrently within a phase. An object whose live copy carries the hash of the wanted
   object (annotation ``APPLIED_HASH_ANNOTATION``) and still holds every wanted field is
   not sent at all: a converged policy re-applies with zero writes. ``changed`` comes from
   the server (a new resourceVersion), so a no-op apply is not a change.
5. **Prune** this policy's objects of the managed components that are no longer wanted, in
   reverse phase order (routes before the AuthorizationPolicies that guard them), each
   delete preconditioned on the uid we saw labelled.

Check mode is the API server's dry run (``dryRun=All``); nothing is written. ``state=absent``
is a prune of everything in scope. ``mesh_configmap()`` merges the outbound traffic policy
into Istio's mesh ConfigMap and restores it on teardown.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshguard.egress.plugins.module_utils.builder import patch_mesh_config_text
from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import K8sApiError, split_api_version
from ansible_collections.meshguard.egress.plugins.module_utils.labels import (
    ANNOTATION_HOSTS, COMPONENT_DEFAULT_DENY, COMPONENT_GATEWAY, COMPONENT_MESH, COMPONENT_NETPOL, COMPONENT_RULE,
    COMPONENTS, LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_POLICY, LABEL_RULE, MANAGED_BY, is_owned, managed_selector,
    ownership_labels, select_components)

try:
    import yaml
    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    HAS_YAML = False

# sha256 of the wanted object, set by apply: a live object carrying the hash of what we want
# (and still holding every wanted field) needs no request at all.
APPLIED_HASH_ANNOTATION = "egress.meshguard.io/applied-hash"
# On Istio's mesh ConfigMap (not ours): the outbound traffic policy before the first policy
# changed it, and the policies that want it changed. Teardown of the last one restores it.
MESH_PREVIOUS_ANNOTATION = "egress.meshguard.io/previous-outbound-policy"

DEFAULT_API_VERSIONS = {
    "": "v1", "apps": "v1", "policy": "v1", "autoscaling": "v2", "rbac.authorization.k8s.io": "v1",
    "networking.k8s.io": "v1", "networking.istio.io": "v1", "security.istio.io": "v1",
}

# The kinds each component may own: listed for prune and teardown even when none is wanted.
COMPONENT_KINDS = {
    COMPONENT_RULE: (("networking.istio.io", "ServiceEntry"), ("networking.istio.io", "Gateway"),
                     ("networking.istio.io", "DestinationRule"), ("networking.istio.io", "VirtualService"),
                     ("security.istio.io", "AuthorizationPolicy")),
    COMPONENT_DEFAULT_DENY: (("security.istio.io", "AuthorizationPolicy"),),
    COMPONENT_GATEWAY: (("", "Namespace"), ("", "ServiceAccount"), ("rbac.authorization.k8s.io", "Role"),
                        ("rbac.authorization.k8s.io", "RoleBinding"), ("", "Service"), ("apps", "Deployment"),
                        ("policy", "PodDisruptionBudget"), ("autoscaling", "HorizontalPodAutoscaler")),
    COMPONENT_MESH: (("networking.istio.io", "Sidecar"),),
    COMPONENT_NETPOL: (("networking.k8s.io", "NetworkPolicy"),),
}
CLUSTER_SCOPED = frozenset([("", "Namespace")])

# Apply order on an empty cluster; deletes go in reverse. Roles come before the RoleBindings
# that name them: the API server checks a binding made by an account without the `bind` verb
# against the rules of the role it references, which must exist by then (RBAC escalation check).
PHASE_NAMESPACES, PHASE_IDENTITY, PHASE_WORKLOAD, PHASE_AUTHZ, PHASE_ROUTING = 0, 1, 2, 3, 4
PHASE_NAMES = {PHASE_NAMESPACES: "namespaces", PHASE_IDENTITY: "service accounts, roles, configuration",
               PHASE_WORKLOAD: "gateway workload", PHASE_AUTHZ: "authorization policies",
               PHASE_ROUTING: "routing and network policies"}
_PHASE_OF_KIND = {
    "Namespace": PHASE_NAMESPACES,
    "ServiceAccount": PHASE_IDENTITY, "Role": PHASE_IDENTITY, "ConfigMap": PHASE_IDENTITY, "Secret": PHASE_IDENTITY,
    "RoleBinding": PHASE_WORKLOAD, "Service": PHASE_WORKLOAD, "Deployment": PHASE_WORKLOAD,
    "PodDisruptionBudget": PHASE_WORKLOAD, "HorizontalPodAutoscaler": PHASE_WORKLOAD,
    "AuthorizationPolicy": PHASE_AUTHZ,
}
# Beyond this many namespaces, a kind is read with one cluster-wide LIST instead of one per namespace.
_MAX_NAMESPACE_LISTS = 4
# Kinds checked before deleting a Namespace we created: anything of someone else's keeps it.
_NAMESPACE_CONTENT_KINDS = (("v1", "Pod"), ("v1", "Service"), ("v1", "ConfigMap"), ("v1", "ServiceAccount"),
                            ("apps/v1", "Deployment"), ("v1", "Secret"))
# Server-generated metadata left out of diffs and comparisons.
_VOLATILE_META = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink")


class ApplyError(Exception):
    """The apply stopped. ``partial`` holds what was done before (the same shape as a result)."""

    def __init__(self, message, partial=None):
        super(ApplyError, self).__init__(message)
        self.partial = partial or {}


# --- identities and small helpers ---------------------------------------------------------

def object_key(obj):
    """(group, kind, namespace, name): the identity of an object, whatever its API version."""
    group = split_api_version(obj.get("apiVersion") or "")[0]
    meta = obj.get("metadata") or {}
    return (group, obj.get("kind"), meta.get("namespace") or "", meta.get("name"))


def describe(key):
    group, kind, namespace, name = key
    return "%s %s" % (kind, "%s/%s" % (namespace, name) if namespace else name)


def phase_of(kind):
    return _PHASE_OF_KIND.get(kind, PHASE_ROUTING)


def object_hash(obj):
    """Stable hash of the wanted object (our own hash annotation excluded)."""
    clean = copy.deepcopy(obj)
    annotations = (clean.get("metadata") or {}).get("annotations")
    if annotations and APPLIED_HASH_ANNOTATION in annotations:
        del annotations[APPLIED_HASH_ANNOTATION]
        if not annotations:
            del clean["metadata"]["annotations"]
    text = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def with_hash(obj):
    body = copy.deepcopy(obj)
    meta = body.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations[APPLIED_HASH_ANNOTATION] = object_hash(obj)
    meta["annotations"] = annotations
    return body


def is_subset(want, have):
    """True when every field of `want` is in `have` with the same value (lists: same length,
    element-wise subset, so a server-defaulted field inside a list item is fine)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and is_subset(v, have[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(
            is_subset(a, b) for a, b in zip(want, have))
    return want == have


def in_sync(want, live):
    """True when `live` is what applying `want` would leave: no request needed."""
    if live is None:
        return False
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    return annotations.get(APPLIED_HASH_ANNOTATION) == object_hash(want) and is_subset(with_hash(want), live)


def clean_for_diff(obj):
    if not obj:
        return None
    clean = copy.deepcopy(obj)
    clean.pop("status", None)
    meta = clean.get("metadata") or {}
    for key in _VOLATILE_META:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    for key in (APPLIED_HASH_ANNOTATION, "kubectl.kubernetes.io/last-applied-configuration"):
        annotations.pop(key, None)
    if "annotations" in meta and not annotations:
        del meta["annotations"]
    return clean


def to_yaml(obj):
    if obj is None:
        return ""
    if HAS_YAML:
        return yaml.safe_dump(obj, default_flow_style=False, sort_keys=True)
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def diff_entry(key, before, after):
    return {"before_header": "%s (cluster)" % describe(key), "after_header": "%s (wanted)" % describe(key),
            "before": to_yaml(clean_for_diff(before)), "after": to_yaml(clean_for_diff(after))}


def hosts_of(obj):
    """Hosts a rule object claims: the hosts annotation, else a ServiceEntry's spec.hosts."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_HOSTS)
    if text:
        text = text.strip()
        if text.startswith("["):
            try:
                return [str(h) for h in json.loads(text)]
            except ValueError:
                pass
        return [h for h in text.replace(",", " ").split() if h]
    if obj.get("kind") == "ServiceEntry":
        return list((obj.get("spec") or {}).get("hosts") or [])
    return []


def api_version_for(group, api_versions):
    version = (api_versions or {}).get(group) or DEFAULT_API_VERSIONS.get(group, "v1")
    return "%s/%s" % (group, version) if group else version


def group_versions(api_versions):
    """{group: version} from the policy's api_versions ({networking, security}: 'group/version')."""
    result = {}
    for value in (api_versions or {}).values():
        if value:
            group, version = split_api_version(value)
            result[group] = version
    return result


def _api_error(exc, doing):
    if isinstance(exc, K8sApiError):
        if exc.status == 0:
            return "%s: the Kubernetes API server did not answer (%s)" % (doing, exc.api_message)
        if exc.forbidden:
            return "%s: permission denied (HTTP 403): %s" % (doing, exc.api_message)
        if exc.conflict and "conflict" in (exc.api_message or "").lower():
            return ("%s: field manager conflict (HTTP 409): %s. Another manager owns these fields; "
                    "set force: true to take them over." % (doing, exc.api_message))
        return "%s: HTTP %d: %s" % (doing, exc.status, exc.api_message)
    return "%s: %s" % (doing, exc)


# --- the engine ---------------------------------------------------------------------------

class _Run:
    def __init__(self, client, policy_name, components, check_mode, diff, force, workers):
        self.client = client
        self.policy_name = policy_name
        self.components = list(components)
        self.check_mode = check_mode
        self.want_diff = diff
        self.force = force
        self.workers = max(1, workers)
        self.result = {"changed": False, "created": [], "updated": [], "deleted": [], "unchanged": [],
                       "kept": [], "warnings": [], "diff": []}

    def map(self, func, items):
        items = list(items)
        if len(items) <= 1 or self.workers == 1:
            return [func(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(func, items))

    def fail(self, message):
        raise ApplyError(message, self.summary())

    def summary(self):
        result = dict(self.result)
        for key in ("created", "updated", "deleted", "unchanged", "kept"):
            result[key] = sorted(result[key])
        result["changed"] = bool(result["created"] or result["updated"] or result["deleted"])
        return result


def check_objects(objects, policy_name, components):
    """Input checks that need no cluster; returns a list of problems."""
    problems = []
    seen = set()
    for index, obj in enumerate(objects):
        where = "resources[%d]" % index
        if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind") or not (
                (obj.get("metadata") or {}).get("name")):
            problems.append("%s: not a Kubernetes object (apiVersion, kind and metadata.name are required)" % where)
            continue
        key = object_key(obj)
        where = "%s (%s)" % (where, describe(key))
        if key in seen:
            problems.append("%s: listed twice" % where)
        seen.add(key)
        if not is_owned(obj, policy_name):
            problems.append("%s: lacks the ownership labels of policy %r (%s=%s, %s=%s); "
                            "build objects with meshguard.egress.egress_resources"
                            % (where, policy_name, LABEL_MANAGED_BY, MANAGED_BY, LABEL_POLICY, policy_name))
            continue
        component = obj["metadata"]["labels"].get(LABEL_COMPONENT)
        if component not in components:
            problems.append("%s: component %r is not managed by this call (components: %s)"
                            % (where, component, ", ".join(components)))
    return problems


def _scan_plan(objects, components, api_versions):
    """What to read: {(group, kind): api_version} and {(group, kind): set(namespaces)}."""
    versions = group_versions(api_versions)
    kinds = {}
    for component in components:
        for group, kind in COMPONENT_KINDS.get(component, ()):
            kinds[(group, kind)] = api_version_for(group, versions)
    namespaces = {}
    for obj in objects:
        group, kind, namespace, dummy = object_key(obj)
        kinds.setdefault((group, kind), obj["apiVersion"])
        if namespace:
            namespaces.setdefault((group, kind), set()).add(namespace)
    # The host check reads the rule objects of every other policy, even when only the
    # default-deny component is managed here.
    if COMPONENT_RULE in components:
        for group, kind in COMPONENT_KINDS[COMPONENT_RULE]:
            kinds.setdefault((group, kind), api_version_for(group, versions))
    return kinds, namespaces


def _read_cluster(run, objects, kinds, namespaces):
    """Returns (managed, live): every meshguard.egress object of the kinds (any policy), and
    every object (labelled or not) in the wanted namespaces, both keyed by object_key."""
    wanted_kinds = set((object_key(o)[0], object_key(o)[1]) for o in objects)
    jobs = []
    for gk, api_version in sorted(kinds.items()):
        jobs.append(("managed", gk, api_version, None))
        ns_set = namespaces.get(gk) or set()
        if len(ns_set) > _MAX_NAMESPACE_LISTS:
            jobs.append(("all", gk, api_version, None))
        else:
            for namespace in sorted(ns_set):
                jobs.append(("all", gk, api_version, namespace))
        if gk in CLUSTER_SCOPED and gk in wanted_kinds:
            jobs.append(("all", gk, api_version, None))

    def read(job):
        what, gk, api_version, namespace = job
        try:
            items = run.client.list(api_version, gk[1], namespace,
                                    managed_selector() if what == "managed" else None)
        except K8sApiError as exc:
            if exc.not_found and gk not in wanted_kinds:
                return job, []  # e.g. no HPA API or Istio CRDs: nothing of ours can exist there
            return job, exc
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", gk[1])
        return job, items

    managed, live, errors = {}, {}, []
    for job, items in run.map(read, jobs):
        what, gk, api_version, namespace = job
        if isinstance(items, Exception):
            where = "in namespace %s" % namespace if namespace else "in all namespaces"
            if what == "managed":
                where += " with label selector %s" % managed_selector()
            errors.append(_api_error(items, "list %s (%s) %s" % (gk[1], api_version, where)))
            continue
        for item in items:
            key = object_key(item)
            (managed if what == "managed" else live)[key] = item
            if what == "all" and (item.get("metadata") or {}).get("labels", {}).get(LABEL_MANAGED_BY) == MANAGED_BY:
                managed.setdefault(key, item)
    if errors:
        run.fail("could not read the cluster; nothing was changed:\n  - " + "\n  - ".join(sorted(set(errors))))
    for key, item in managed.items():
        live.setdefault(key, item)
    return managed, live


def host_conflicts(objects, managed, policy_name):
    """Problems for hosts that a rule object of this policy and one of another policy both claim."""
    ours = {}
    for obj in objects:
        labels = obj["metadata"].get("labels") or {}
        if labels.get(LABEL_COMPONENT) != COMPONENT_RULE:
            continue
        for host in hosts_of(obj):
            ours.setdefault(host, set()).add(labels.get(LABEL_RULE) or "?")
    theirs = {}
    for key, obj in managed.items():
        labels = (obj.get("metadata") or {}).get("labels") or {}
        other = labels.get(LABEL_POLICY)
        if other == policy_name or labels.get(LABEL_COMPONENT) != COMPONENT_RULE:
            continue
        for host in hosts_of(obj):
            if host in ours:
                theirs.setdefault(host, set()).add((other, labels.get(LABEL_RULE) or "?", describe(key)))
    problems = []
    for host in sorted(theirs):
        others = sorted(theirs[host])
        problems.append("host %s is claimed by policy %r (rule %s) and by policy %r (rule %s, %s); "
                        "a host may belong to one policy only" % (
                            host, policy_name, ", ".join(sorted(ours[host])), others[0][0], others[0][1],
                            others[0][2]))
    return problems


def foreign_objects(objects, live, policy_name):
    problems = []
    for obj in objects:
        key = object_key(obj)
        found = live.get(key)
        if found is None or is_owned(found, policy_name):
            continue
        labels = (found.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_MANAGED_BY) == MANAGED_BY:
            owner = "it belongs to meshguard.egress policy %r" % labels.get(LABEL_POLICY)
        else:
            owner = "it exists without the meshguard.egress ownership labels (%s=%s, %s=%s)" % (
                LABEL_MANAGED_BY, MANAGED_BY, LABEL_POLICY, policy_name)
        problems.append("refusing to change %s: %s; rename or remove it, or choose another name_prefix"
                        % (describe(key), owner))
    return problems


def sidecar_warnings(objects, live, policy_name):
    warnings = []
    for obj in objects:
        if obj["kind"] != "Sidecar":
            continue
        namespace = obj["metadata"].get("namespace")
        for key, other in sorted(live.items()):
            if key[1] == "Sidecar" and key[2] == namespace and not is_owned(other, policy_name):
                warnings.append(
                    "namespace %s already has its own Sidecar %s: Istio applies one Sidecar without a "
                    "workloadSelector per namespace, and a namespace Sidecar takes precedence over the mesh "
                    "default, so the outbound traffic policy may not be what %s says" % (
                        namespace, key[3], describe(object_key(obj))))
    return warnings


def _namespace_object(name, policy_name, component):
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": ownership_labels(policy_name, component)}}


def _apply_one(run, obj, live, missing_namespaces):
    key = object_key(obj)
    if in_sync(obj, live):
        return key, "unchanged", live, None, None
    body = with_hash(obj)
    if run.check_mode and key[2] in missing_namespaces:
        # The namespace would be created first; a dry run in a missing namespace is refused.
        return key, "created", live, body, None
    try:
        applied = run.client.apply(body, force=run.force, dry_run=run.check_mode)
    except K8sApiError as exc:
        return key, "error", live, None, _api_error(exc, "apply %s" % describe(key))
    if live is None:
        return key, "created", live, applied, None
    if run.check_mode:
        same = clean_for_diff(applied) == clean_for_diff(live)
    else:
        same = (applied.get("metadata") or {}).get("resourceVersion") == live["metadata"].get("resourceVersion")
    return key, "unchanged" if same else "updated", live, applied, None


def _record(run, outcomes):
    errors = []
    for key, state, before, after, error in outcomes:
        if error:
            errors.append(error)
            continue
        run.result[state].append(describe(key))
        if run.want_diff and state in ("created", "updated", "deleted"):
            run.result["diff"].append(diff_entry(key, before, after))
    return errors


def _namespace_in_use(run, name):
    """Descriptions of objects in namespace `name` that are not this policy's."""
    used = []
    for api_version, kind in _NAMESPACE_CONTENT_KINDS:
        try:
            items = run.client.list(api_version, kind, name)
        except K8sApiError as exc:
            used.append(_api_error(exc, "list %s in %s" % (kind, name)))
            continue
        for item in items:
            meta = item.get("metadata") or {}
            if is_owned(item, run.policy_name) or (kind == "ConfigMap" and meta.get("name") == "kube-root-ca.crt"):
                continue
            if kind == "Pod" and meta.get("ownerReferences"):
                continue  # a controller's pod: its controller (a Deployment, ...) is what counts
            if kind == "ServiceAccount" and meta.get("name") == "default":
                continue
            if kind == "Secret" and (item.get("type") or "").startswith("kubernetes.io/service-account"):
                continue
            used.append("%s %s/%s" % (kind, name, meta.get("name")))
    return used


def apply_objects(client, objects, policy_name, components, state="present", force=False, check_mode=False,
                  diff=False, api_versions=None, create_namespaces=False, prune=True, workers=8):
    """Apply `objects` (state present) or remove everything in scope (state absent).

    Returns a dict: changed, created, updated, deleted, unchanged, kept (lists of
    "Kind namespace/name"), warnings (list of str), diff (list of before/after dicts).
    Raises ApplyError (with .partial) on refusal or on an API error.
    """
    components = list(components)
    objects = list(objects or []) if state == "present" else []
    unknown = sorted(set(components) - set(COMPONENTS))
    if unknown:
        raise ApplyError("unknown components: %s (known: %s)" % (", ".join(unknown), ", ".join(COMPONENTS)))
    problems = check_objects(objects, policy_name, components)
    if problems:
        raise ApplyError("the objects to apply are not this policy's; nothing was sent to the cluster:\n  - "
                         + "\n  - ".join(problems))

    run = _Run(client, policy_name, components, check_mode, diff, force, workers)
    kinds, namespaces = _scan_plan(objects, components, api_versions)
    managed, live = _read_cluster(run, objects, kinds, namespaces)

    problems = foreign_objects(objects, live, policy_name)
    if COMPONENT_RULE in components:
        problems.extend(host_conflicts(objects, managed, policy_name))
    if problems:
        run.fail("nothing was changed:\n  - " + "\n  - ".join(problems))
    run.result["warnings"].extend(sidecar_warnings(objects, live, policy_name))

    # Namespaces the objects go to: missing ones are created (create_namespaces) or reported.
    wanted_keys = set(object_key(o) for o in objects)
    needed = sorted(set(object_key(o)[2] for o in objects if object_key(o)[2]))
    missing = set()
    if needed:
        def ns_exists(name):
            found = live.get(("", "Namespace", "", name))
            if found is not None:
                return name, True, None
            try:
                return name, client.get("v1", "Namespace", name) is not None, None
            except K8sApiError as exc:
                return name, None, _api_error(exc, "get Namespace %s" % name)
        errors = []
        for name, exists, error in run.map(ns_exists, needed):
            if error:
                errors.append(error)
            elif not exists:
                missing.add(name)
        if errors:
            run.fail("could not read the cluster; nothing was changed:\n  - " + "\n  - ".join(errors))
        if missing and not create_namespaces:
            run.fail("namespace%s %s do%s not exist; nothing was changed (the egress_gateway role creates the "
                     "gateway namespace; client namespaces are yours)" % (
                         "s" if len(missing) > 1 else "", ", ".join(sorted(missing)),
                         "" if len(missing) > 1 else "es"))
        component = COMPONENT_GATEWAY if COMPONENT_GATEWAY in components else components[0]
        for name in sorted(missing):
            ns_obj = _namespace_object(name, policy_name, component)
            objects.append(ns_obj)
            wanted_keys.add(object_key(ns_obj))
    # A namespace we created earlier stays wanted while objects of ours live in it.
    for key, obj in managed.items():
        if key[:2] == ("", "Namespace") and key[3] in needed and is_owned(obj, policy_name) and key not in wanted_keys:
            wanted_keys.add(key)

    phases = {}
    for obj in objects:
        phases.setdefault(phase_of(obj["kind"]), []).append(obj)
    for phase in sorted(phases):
        outcomes = run.map(lambda obj: _apply_one(run, obj, live.get(object_key(obj)), missing), phases[phase])
        errors = _record(run, outcomes)
        if errors:
            run.fail("apply stopped in phase %r; later phases and pruning were not run:\n  - %s" % (
                PHASE_NAMES[phase], "\n  - ".join(sorted(errors))))

    if prune or state == "absent":
        _prune(run, managed, wanted_keys)
    return run.summary()


def _prune(run, managed, wanted_keys):
    in_scope = {}
    for key, obj in managed.items():
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if key in wanted_keys or not is_owned(obj, run.policy_name):
            continue
        if labels.get(LABEL_COMPONENT) not in run.components:
            continue
        in_scope.setdefault(phase_of(key[1]), []).append((key, obj))

    def delete(item):
        key, obj = item
        meta = obj.get("metadata") or {}
        api_version = obj.get("apiVersion")
        try:
            gone = run.client.delete(api_version, key[1], key[3], key[2] or None, uid=meta.get("uid"),
                                     dry_run=run.check_mode)
        except K8sApiError as exc:
            if exc.conflict:  # the uid precondition failed: someone recreated it, it is not what we saw
                return key, "kept", obj, None, None
            return key, "error", obj, None, _api_error(exc, "delete %s" % describe(key))
        return key, "deleted" if gone else "unchanged", obj, None, None

    for phase in sorted(in_scope, reverse=True):
        items = sorted(in_scope[phase])
        if phase == PHASE_NAMESPACES:
            keep = []
            for key, obj in items:
                used = _namespace_in_use(run, key[3])
                if used:
                    keep.append((key, obj))
                    run.result["kept"].append(describe(key))
                    run.result["warnings"].append(
                        "kept %s (created by this policy): it holds objects that are not this policy's: %s"
                        % (describe(key), ", ".join(used[:5]) + (" ..." if len(used) > 5 else "")))
            items = [item for item in items if item not in keep]
        errors = _record(run, run.map(delete, items))
        if errors:
            run.fail("prune stopped in phase %r:\n  - %s" % (PHASE_NAMES[phase], "\n  - ".join(sorted(errors))))


def _deployment_ready(obj):
    """(ready, why) for a Deployment as the server holds it."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return False, "the controller has not seen generation %s yet" % meta.get("generation")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Available":
            if cond.get("status") == "True":
                return True, ""
            return False, "Available=%s: %s" % (cond.get("status"), cond.get("message") or cond.get("reason"))
    return False, "no Available condition yet"


def wait_available(client, objects, timeout=300, interval=1.0, clock=time.monotonic, sleep=time.sleep):
    """Wait until every Deployment among `objects` is Available (observed generation current).
    Raises ApplyError naming the Deployment and its condition after `timeout` seconds."""
    pending = [obj for obj in objects if obj.get("kind") == "Deployment"]
    deadline = clock() + timeout
    why = {}
    while pending:
        still = []
        for obj in pending:
            meta = obj["metadata"]
            try:
                live = client.get(obj["apiVersion"], "Deployment", meta["name"], meta.get("namespace"))
            except K8sApiError as exc:
                raise ApplyError(_api_error(exc, "get Deployment %s/%s" % (meta.get("namespace"), meta["name"])))
            ready, reason = _deployment_ready(live or {})
            if not ready:
                why[describe(object_key(obj))] = reason if live else "not found"
                still.append(obj)
        pending = still
        if not pending:
            return
        if clock() >= deadline:
            raise ApplyError("not Available after %ds: %s" % (timeout, "; ".join(
                "%s (%s)" % (name, text) for name, text in sorted(why.items()))))
        sleep(interval)


# --- Istio's mesh ConfigMap ---------------------------------------------------------------

def _mesh_mode(text):
    data = yaml.safe_load(text or "") or {}
    if not isinstance(data, dict):
        raise ValueError("the mesh config is not a YAML mapping")
    return (data.get("outboundTrafficPolicy") or {}).get("mode")


def restore_mesh_text(text, previous):
    """The mesh config with outboundTrafficPolicy.mode set back to `previous` (None: unset)."""
    if previous is not None:
        return patch_mesh_config_text(text, previous, yaml)
    data = yaml.safe_load(text or "") or {}
    otp = data.get("outboundTrafficPolicy")
    if not isinstance(otp, dict) or "mode" not in otp:
        return text, False
    del otp["mode"]
    if not otp:
        del data["outboundTrafficPolicy"]
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=True), True


def converge(client, resources, policy_name, components, state="present", mesh=None, force=False, check_mode=False,
             diff=False, api_versions=None, create_namespaces=False, prune=True, workers=8, wait=False,
             wait_timeout=300):
    """One egress_apply run: the objects of `components` applied (or removed), pruned, the
    gateway waited for, and the mesh ConfigMap (`mesh`, the builder's mesh_config, or None)
    changed. Returns (result, warnings); raises ApplyError.

    The mesh setting goes first on apply (REGISTRY_ONLY before any route: fail closed) and last
    on teardown (the mesh stays closed until our routes are gone)."""
    result = {"changed": False, "mesh_changed": False}
    warnings, mesh_diffs = [], []

    def mesh_step(step_state):
        done = mesh_configmap(client, mesh, policy_name, step_state, check_mode, diff)
        result["mesh_changed"] = done["changed"]
        mesh_diffs.extend(done["diff"])
        warnings.extend(done["warnings"])

    selected = select_components(resources, components)
    if mesh and state == "present":
        mesh_step("present")
    applied = apply_objects(client, selected, policy_name, components, state=state, force=force,
                            check_mode=check_mode, diff=diff, api_versions=api_versions,
                            create_namespaces=create_namespaces, prune=prune, workers=workers)
    if wait and state == "present" and not check_mode:
        wait_available(client, selected, wait_timeout)
    if mesh and state == "absent":
        mesh_step("absent")
    warnings = applied.pop("warnings") + warnings
    diffs = applied.pop("diff") + mesh_diffs
    result.update(applied)
    result["changed"] = bool(applied["changed"] or result["mesh_changed"])
    if diff and diffs:
        result["diff"] = diffs
    return result, warnings


def configmap_to_manage(mesh, components):
    """The builder's mesh_config when this run changes the mesh ConfigMap (component
    mesh-config, managed, method configmap), else None; ValueError when it lacks a key."""
    if not (mesh and COMPONENT_MESH in components and mesh.get("manage", True) and mesh.get("method") == "configmap"):
        return None
    missing = [k for k in ("namespace", "configmap", "outbound_policy") if not mesh.get(k)]
    if missing:
        raise ValueError("mesh_config lacks %s; pass the mesh_config result of meshguard.egress.egress_resources"
                         % ", ".join(missing))
    return mesh


def failure_result(exc):
    """The module result for an ApplyError: what was done before it failed (changed when
    anything was written), without the diff and warnings."""
    partial = dict((k, v) for k, v in exc.partial.items() if k not in ("diff", "warnings"))
    if exc.partial.get("created") or exc.partial.get("updated") or exc.partial.get("deleted"):
        partial["changed"] = True
    return partial


def mesh_configmap(client, mesh, policy_name, state="present", check_mode=False, diff=False):
    """Merge (present) or restore (absent) outboundTrafficPolicy.mode in Istio's mesh ConfigMap.

    `mesh` is the builder's mesh_config(): namespace, configmap, key, outbound_policy.
    Only that key of the mesh text changes; every other key and every other data entry stays.
    The value before the first change and the policies that asked for it are kept in the
    annotation MESH_PREVIOUS_ANNOTATION; teardown of the last of those policies restores it.
    Returns {changed, warnings, diff}.
    """
    if not HAS_YAML:
        raise ApplyError("PyYAML is required to edit the mesh ConfigMap")
    namespace, name, key = mesh["namespace"], mesh["configmap"], mesh.get("key") or "mesh"
    where = "ConfigMap %s/%s" % (namespace, name)
    try:
        cm = client.get("v1", "ConfigMap", name, namespace)
    except K8sApiError as exc:
        raise ApplyError(_api_error(exc, "get " + where))
    result = {"changed": False, "warnings": [], "diff": []}
    if cm is None:
        if state == "absent":
            return result
        raise ApplyError("%s not found: is Istio installed there? (with a revision, set mesh.revision so the "
                         "ConfigMap istio-<revision> is used)" % where)
    meta = cm.get("metadata") or {}
    data = cm.get("data") or {}
    text = data.get(key, "")
    try:
        current = _mesh_mode(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ApplyError("%s key %s: %s" % (where, key, exc))
    raw = (meta.get("annotations") or {}).get(MESH_PREVIOUS_ANNOTATION)
    record = None
    if raw:
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
    if not isinstance(record, dict):
        record = None

    if state == "present":
        wanted = mesh["outbound_policy"]
        new_text, text_changed = patch_mesh_config_text(text, wanted, yaml)
        if record is None:
            new_record = {"previous": current, "policies": [policy_name]}
        else:
            new_record = dict(record)
            new_record["policies"] = sorted(set(record.get("policies") or []) | set([policy_name]))
            others = [p for p in new_record["policies"] if p != policy_name]
            if others and text_changed:
                result["warnings"].append(
                    "%s: outboundTrafficPolicy.mode was %s (set for policies %s); policy %s sets %s: the last "
                    "apply wins for the whole mesh" % (where, current, ", ".join(others), policy_name, wanted))
    else:
        if record is None or policy_name not in (record.get("policies") or []):
            return result  # this policy never changed the ConfigMap
        remaining = [p for p in record.get("policies") or [] if p != policy_name]
        if remaining:
            new_text, text_changed = text, False
            new_record = dict(record, policies=remaining)
        else:
            new_text, text_changed = restore_mesh_text(text, record.get("previous"))
            new_record = None
    if not text_changed and new_record == record:
        return result

    patch = {"metadata": {"resourceVersion": meta.get("resourceVersion"), "annotations": {
        MESH_PREVIOUS_ANNOTATION: json.dumps(new_record, sort_keys=True) if new_record is not None else None}}}
    if text_changed:
        patch["data"] = {key: new_text}
    try:
        after = client.patch("v1", "ConfigMap", name, namespace, patch, "merge", dry_run=check_mode)
    except K8sApiError as exc:
        if exc.conflict:
            raise ApplyError("%s changed while we edited it (HTTP 409); run again" % where)
        raise ApplyError(_api_error(exc, "patch " + where))
    result["changed"] = True
    if diff:
        result["diff"].append({"before_header": "%s data.%s (cluster)" % (where, key),
                               "after_header": "%s data.%s (wanted)" % (where, key),
                               "before": text, "after": ((after or {}).get("data") or {}).get(key, new_text)})
    return result
