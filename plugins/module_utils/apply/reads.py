# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an apply reads, and reading it: a plan of kinds and namespaces (``scan_plan``), then
concurrent LIST requests, a few per kind and never one GET per object (``read_cluster``):
every object of every meshguard.egress policy of those kinds, and every object, labelled or
not, in the namespaces the objects go to. Also which of those namespaces exist.

Not here: what is decided from what was read (checks.py, runner.py, prune.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.apply.errors import api_error
from ansible_collections.meshguard.egress.plugins.module_utils.apply.objects import object_key
from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import K8sApiError, split_api_version
from ansible_collections.meshguard.egress.plugins.module_utils.kinds import (
    CLUSTER_SCOPED, api_version_for, api_version_of, kinds_of)
from ansible_collections.meshguard.egress.plugins.module_utils.labels import (
    COMPONENT_RULE, LABEL_MANAGED_BY, MANAGED_BY, managed_selector)

# Beyond this many namespaces, a kind is read with one cluster-wide LIST instead of one per namespace.
_MAX_NAMESPACE_LISTS = 4


def group_versions(api_versions):
    """{group: version} from the policy's api_versions ({networking, security}: 'group/version')."""
    result = {}
    for value in (api_versions or {}).values():
        if value:
            group, version = split_api_version(value)
            result[group] = version
    return result


def scan_plan(objects, components, api_versions):
    """What to read: {(group, kind): api_version} and {(group, kind): set(namespaces)}."""
    versions = group_versions(api_versions)
    kinds = {}
    for component in components:
        for group, kind in kinds_of(component):
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
        for group, kind in kinds_of(COMPONENT_RULE):
            kinds.setdefault((group, kind), api_version_for(group, versions))
    return kinds, namespaces


def _list_jobs(objects, kinds, namespaces):
    """(what, (group, kind), api_version, namespace or None) of every LIST to send: "managed"
    lists by the managed-by label, "all" lists everything in a namespace (or cluster-wide)."""
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
    return jobs, wanted_kinds


def read_cluster(run, objects, kinds, namespaces):
    """Returns (managed, live): every meshguard.egress object of the kinds (any policy), and
    every object (labelled or not) in the wanted namespaces, both keyed by object_key."""
    jobs, wanted_kinds = _list_jobs(objects, kinds, namespaces)

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
            errors.append(api_error(items, "list %s (%s) %s" % (gk[1], api_version, where)))
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


def missing_namespaces(run, needed, live):
    """The namespaces among `needed` that do not exist (GET for those the LISTs did not see)."""
    def ns_exists(name):
        found = live.get(("", "Namespace", "", name))
        if found is not None:
            return name, True, None
        try:
            return name, run.client.get(api_version_of("Namespace"), "Namespace", name) is not None, None
        except K8sApiError as exc:
            return name, None, api_error(exc, "get Namespace %s" % name)

    missing, errors = set(), []
    for name, exists, error in run.map(ns_exists, needed):
        if error:
            errors.append(error)
        elif not exists:
            missing.add(name)
    if errors:
        run.fail("could not read the cluster; nothing was changed:\n  - " + "\n  - ".join(errors))
    return missing
