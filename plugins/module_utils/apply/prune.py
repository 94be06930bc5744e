# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prune: delete this policy's objects of the managed components that are no longer wanted,
in reverse phase order (routes before the AuthorizationPolicies that guard them), each
delete preconditioned on the uid we saw labelled. A Namespace this policy created is kept
while it holds anything that is not this policy's.

Not here: finding the objects (reads.py), applying (runner.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.apply.errors import api_error
from ansible_collections.meshguard.egress.plugins.module_utils.apply.objects import describe
from ansible_collections.meshguard.egress.plugins.module_utils.apply.run import Outcome
from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import K8sApiError
from ansible_collections.meshguard.egress.plugins.module_utils.kinds import (
    PHASE_NAMES, PHASE_NAMESPACES, api_version_of, phase_of)
from ansible_collections.meshguard.egress.plugins.module_utils.labels import LABEL_COMPONENT, is_owned

# Kinds checked before deleting a Namespace we created: anything of someone else's keeps it.
_NAMESPACE_CONTENT_KINDS = tuple((api_version_of(kind), kind) for kind in (
    "Pod", "Service", "ConfigMap", "ServiceAccount", "Deployment", "Secret"))


def prune_unwanted(run, managed, wanted_keys):
    """Delete the objects of `managed` that are this policy's, of a managed component, and
    not in `wanted_keys`; phase by phase, in reverse. Fails the run on an API error."""
    in_scope = {}
    for key, obj in managed.items():
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if key in wanted_keys or not is_owned(obj, run.policy_name):
            continue
        if labels.get(LABEL_COMPONENT) not in run.components:
            continue
        in_scope.setdefault(phase_of(key[1]), []).append((key, obj))

    for phase in sorted(in_scope, reverse=True):
        items = sorted(in_scope[phase])
        if phase == PHASE_NAMESPACES:
            items = _without_used_namespaces(run, items)
        errors = run.record(run.map(lambda item: _delete(run, item), items))
        if errors:
            run.fail("prune stopped in phase %r:\n  - %s" % (PHASE_NAMES[phase], "\n  - ".join(sorted(errors))))


def _delete(run, item):
    key, obj = item
    meta = obj.get("metadata") or {}
    try:
        gone = run.client.delete(obj.get("apiVersion"), key[1], key[3], key[2] or None, uid=meta.get("uid"),
                                 dry_run=run.check_mode)
    except K8sApiError as exc:
        if exc.conflict:  # the uid precondition failed: someone recreated it, it is not what we saw
            return Outcome(key=key, state="kept", before=obj)
        return Outcome(key=key, state="error", before=obj, error=api_error(exc, "delete %s" % describe(key)))
    return Outcome(key=key, state="deleted" if gone else "unchanged", before=obj)


def _without_used_namespaces(run, items):
    """The Namespaces of `items` that may go; the others are reported kept, with a warning."""
    keep = []
    for key, obj in items:
        used = _namespace_in_use(run, key[3])
        if used:
            keep.append((key, obj))
            run.result["kept"].append(describe(key))
            run.result["warnings"].append(
                "kept %s (created by this policy): it holds objects that are not this policy's: %s"
                % (describe(key), ", ".join(used[:5]) + (" ..." if len(used) > 5 else "")))
    return [item for item in items if item not in keep]


def _namespace_in_use(run, name):
    """Descriptions of objects in namespace `name` that are not this policy's."""
    used = []
    for api_version, kind in _NAMESPACE_CONTENT_KINDS:
        try:
            items = run.client.list(api_version, kind, name)
        except K8sApiError as exc:
            used.append(api_error(exc, "list %s in %s" % (kind, name)))
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
