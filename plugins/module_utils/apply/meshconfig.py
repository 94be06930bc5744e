# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Istio's mesh ConfigMap (``istio`` or ``istio-<revision>``), both halves in one room: the
edit of the ``outboundTrafficPolicy.mode`` key in the ConfigMap's ``mesh`` text and its
restore (``patch_mesh_config_text``, ``restore_mesh_text``, ``mesh_mode``), whether a run
changes the ConfigMap (``configmap_to_manage``), and the merge or restore on the cluster
(``mesh_configmap``, with the client passed in).

The ConfigMap is Istio's, not ours: only that one key of the mesh text changes; the value
before the first change and the policies that asked for it are kept in the annotation
``MESH_PREVIOUS_ANNOTATION`` (labels.py), so teardown of the last policy restores it.

Not here: what a policy wants of the mesh, whichever method (``builder.mesh_config``, next to
the Sidecars of method ``sidecar``: rendering must not load this room, which imports the
client), the objects apply owns (the other rooms of apply/).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
from collections import namedtuple

from ansible_collections.meshguard.egress.plugins.module_utils.apply.errors import ApplyError, api_error
from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import K8sApiError
from ansible_collections.meshguard.egress.plugins.module_utils.kinds import api_version_of
from ansible_collections.meshguard.egress.plugins.module_utils.labels import COMPONENT_MESH, MESH_PREVIOUS_ANNOTATION

try:
    import yaml
    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    HAS_YAML = False

# What an edit leaves: the mesh text, whether it changed, and the record for the annotation
# ({"previous": mode, "policies": [...]}, or None to remove the annotation).
MeshChange = namedtuple("MeshChange", "text text_changed record")


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


# --- the mesh text --------------------------------------------------------------------------

def mesh_mode(text):
    """outboundTrafficPolicy.mode of a mesh text (None when unset); ValueError when the text is
    not a YAML mapping."""
    data = yaml.safe_load(text or "") or {}
    if not isinstance(data, dict):
        raise ValueError("the mesh config is not a YAML mapping")
    return (data.get("outboundTrafficPolicy") or {}).get("mode")


def patch_mesh_config_text(mesh_text, outbound_policy):
    """Return the `mesh` ConfigMap value with outboundTrafficPolicy.mode set; other keys kept.

    Comments in the original text are not preserved.
    """
    data = yaml.safe_load(mesh_text or "") or {}
    if not isinstance(data, dict):
        raise ValueError("the mesh config is not a YAML mapping")
    current = (data.get("outboundTrafficPolicy") or {}).get("mode")
    if current == outbound_policy:
        return mesh_text, False
    data.setdefault("outboundTrafficPolicy", {})
    if not isinstance(data["outboundTrafficPolicy"], dict):
        data["outboundTrafficPolicy"] = {}
    data["outboundTrafficPolicy"]["mode"] = outbound_policy
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=True), True


def restore_mesh_text(text, previous):
    """The mesh config with outboundTrafficPolicy.mode set back to `previous` (None: unset)."""
    if previous is not None:
        return patch_mesh_config_text(text, previous)
    data = yaml.safe_load(text or "") or {}
    otp = data.get("outboundTrafficPolicy")
    if not isinstance(otp, dict) or "mode" not in otp:
        return text, False
    del otp["mode"]
    if not otp:
        del data["outboundTrafficPolicy"]
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=True), True


# --- the ConfigMap on the cluster -------------------------------------------------------------

def mesh_configmap(client, mesh, policy_name, state="present", check_mode=False, diff=False):
    """Merge (present) or restore (absent) outboundTrafficPolicy.mode in Istio's mesh ConfigMap.

    `mesh` is the builder's mesh_config(): namespace, configmap, key, outbound_policy.
    Only that key of the mesh text changes; every other key and every other data entry stays.
    The value before the first change and the policies that asked for it are kept in the
    annotation MESH_PREVIOUS_ANNOTATION; teardown of the last of those policies restores it.
    Returns {changed, warnings, diff}; raises ApplyError.
    """
    if not HAS_YAML:
        raise ApplyError("PyYAML is required to edit the mesh ConfigMap")
    namespace, name, key = mesh["namespace"], mesh["configmap"], mesh.get("key") or "mesh"
    where = "ConfigMap %s/%s" % (namespace, name)
    try:
        cm = client.get(api_version_of("ConfigMap"), "ConfigMap", name, namespace)
    except K8sApiError as exc:
        raise ApplyError(api_error(exc, "get " + where))
    result = {"changed": False, "warnings": [], "diff": []}
    if cm is None:
        if state == "absent":
            return result
        raise ApplyError("%s not found: is Istio installed there? (with a revision, set mesh.revision so the "
                         "ConfigMap istio-<revision> is used)" % where)
    meta = cm.get("metadata") or {}
    text = (cm.get("data") or {}).get(key, "")
    try:
        current = mesh_mode(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ApplyError("%s key %s: %s" % (where, key, exc))
    record = _read_record(meta)
    if state == "present":
        change = _merge(text, current, record, mesh["outbound_policy"], policy_name, where, result["warnings"])
    else:
        change = _restore(text, record, policy_name)
    if change is None or (not change.text_changed and change.record == record):
        return result
    after = _send_patch(client, where, name, namespace, key, meta.get("resourceVersion"), change, check_mode)
    result["changed"] = True
    if diff:
        result["diff"].append({"before_header": "%s data.%s (cluster)" % (where, key),
                               "after_header": "%s data.%s (wanted)" % (where, key),
                               "before": text, "after": ((after or {}).get("data") or {}).get(key, change.text)})
    return result


def _read_record(meta):
    """The MESH_PREVIOUS_ANNOTATION record of the ConfigMap, or None (absent or unreadable)."""
    raw = (meta.get("annotations") or {}).get(MESH_PREVIOUS_ANNOTATION)
    record = None
    if raw:
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
    return record if isinstance(record, dict) else None


def _merge(text, current, record, wanted, policy_name, where, warnings):
    """The MeshChange of state present; warns when other policies had set another mode."""
    new_text, text_changed = patch_mesh_config_text(text, wanted)
    if record is None:
        return MeshChange(new_text, text_changed, {"previous": current, "policies": [policy_name]})
    new_record = dict(record)
    new_record["policies"] = sorted(set(record.get("policies") or []) | set([policy_name]))
    others = [p for p in new_record["policies"] if p != policy_name]
    if others and text_changed:
        warnings.append(
            "%s: outboundTrafficPolicy.mode was %s (set for policies %s); policy %s sets %s: the last "
            "apply wins for the whole mesh" % (where, current, ", ".join(others), policy_name, wanted))
    return MeshChange(new_text, text_changed, new_record)


def _restore(text, record, policy_name):
    """The MeshChange of state absent, or None when this policy never changed the ConfigMap.
    The last policy that wanted the change restores the mode from before the first one."""
    if record is None or policy_name not in (record.get("policies") or []):
        return None
    remaining = [p for p in record.get("policies") or [] if p != policy_name]
    if remaining:
        return MeshChange(text, False, dict(record, policies=remaining))
    new_text, text_changed = restore_mesh_text(text, record.get("previous"))
    return MeshChange(new_text, text_changed, None)


def _send_patch(client, where, name, namespace, key, resource_version, change, check_mode):
    """A merge patch of the text and the annotation, preconditioned on the resourceVersion read."""
    patch = {"metadata": {"resourceVersion": resource_version, "annotations": {
        MESH_PREVIOUS_ANNOTATION: json.dumps(change.record, sort_keys=True) if change.record is not None else None}}}
    if change.text_changed:
        patch["data"] = {key: change.text}
    try:
        return client.patch(api_version_of("ConfigMap"), "ConfigMap", name, namespace, patch, "merge",
                            dry_run=check_mode)
    except K8sApiError as exc:
        if exc.conflict:
            raise ApplyError("%s changed while we edited it (HTTP 409); run again" % where)
        raise ApplyError(api_error(exc, "patch " + where))
