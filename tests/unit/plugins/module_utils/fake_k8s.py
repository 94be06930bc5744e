# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An in-memory stand-in for k8s_client.Client, for the apply engine's unit tests.

It keeps objects by (group, kind, namespace, name), bumps resourceVersion only when an apply
changes something (as the API server does), honours dry runs, delete uid preconditions and
ConfigMap resourceVersion preconditions, and records every request. The real API server is
exercised by the lab tier (tests/lab/test_apply.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import itertools
import threading

from ansible_collections.meshguard.egress.plugins.module_utils.apply.objects import clean_for_diff, object_key
from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import K8sApiError, split_api_version


def _merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _matches(obj, selector):
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in selector.split(","):
        key, value = term.split("=", 1)
        if labels.get(key) != value:
            return False
    return True


class FakeClient:
    def __init__(self, objects=()):
        self.store = {}
        self.log = []  # (verb, describe-able key, dry_run)
        self.forbidden = set()  # kinds whose LIST is forbidden
        self.conflicts = set()  # object keys whose apply reports a field manager conflict
        self.missing_kinds = set()  # kinds the server does not serve
        self.down = False
        self._lock = threading.Lock()
        self._rv = itertools.count(100)
        self._uid = itertools.count(1)
        for obj in objects:
            self.put(obj)

    # helpers for tests
    def put(self, obj):
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(self._rv))
        meta["uid"] = "uid-%d" % next(self._uid)
        self.store[object_key(obj)] = obj
        return obj

    def writes(self):
        return [entry for entry in self.log if entry[0] in ("apply", "delete", "patch", "create") and not entry[2]]

    def keys(self, kind=None):
        return sorted(k for k in self.store if kind is None or k[1] == kind)

    def _check(self, kind):
        if self.down:
            raise K8sApiError("GET", "/", 0, "connection refused")
        if kind in self.missing_kinds:
            raise K8sApiError("GET", kind, 404, "NotFound", {"message": "the server could not find the requested resource"})

    # the Client API
    def list(self, api_version, kind, namespace=None, label_selector=None):
        with self._lock:
            self.log.append(("list", (kind, namespace, label_selector), False))
        self._check(kind)
        if kind in self.forbidden:
            raise K8sApiError("GET", kind, 403, "Forbidden", {"message": 'User "robot" cannot list resource "%s"' % kind})
        group = split_api_version(api_version)[0]
        with self._lock:
            return [copy.deepcopy(o) for k, o in sorted(self.store.items())
                    if k[0] == group and k[1] == kind and (not namespace or k[2] == namespace)
                    and _matches(o, label_selector)]

    def get(self, api_version, kind, name, namespace=None):
        with self._lock:
            self.log.append(("get", (kind, namespace, name), False))
        self._check(kind)
        group = split_api_version(api_version)[0]
        found = self.store.get((group, kind, namespace or "", name))
        return copy.deepcopy(found) if found else None

    def apply(self, obj, force=False, dry_run=False):
        key = object_key(obj)
        with self._lock:
            self.log.append(("apply", key, dry_run))
        self._check(key[1])
        if key in self.conflicts and not force:
            raise K8sApiError("PATCH", key[3], 409, "Conflict",
                              {"message": 'Apply failed with 1 conflict: conflict with "helm" using v1: .spec.x'})
        with self._lock:
            live = self.store.get(key)
            new = copy.deepcopy(obj)
            if live is not None:
                meta = new["metadata"]
                meta["uid"] = live["metadata"]["uid"]
                meta["resourceVersion"] = live["metadata"]["resourceVersion"]
                if clean_for_diff(new) == clean_for_diff(live):
                    return copy.deepcopy(live)
            else:
                new["metadata"]["uid"] = "uid-%d" % next(self._uid)
            new["metadata"]["resourceVersion"] = str(next(self._rv))
            if not dry_run:
                self.store[key] = new
            return copy.deepcopy(new)

    def delete(self, api_version, kind, name, namespace=None, uid=None, dry_run=False):
        key = (split_api_version(api_version)[0], kind, namespace or "", name)
        with self._lock:
            self.log.append(("delete", key, dry_run))
        self._check(kind)
        with self._lock:
            live = self.store.get(key)
            if live is None:
                return False
            if uid and live["metadata"]["uid"] != uid:
                raise K8sApiError("DELETE", name, 409, "Conflict", {"message": "Precondition failed: UID"})
            if not dry_run:
                del self.store[key]
            return True

    def patch(self, api_version, kind, name, namespace, patch, patch_type="merge", dry_run=False):
        key = (split_api_version(api_version)[0], kind, namespace or "", name)
        with self._lock:
            self.log.append(("patch", key, dry_run))
        self._check(kind)
        with self._lock:
            live = self.store.get(key)
            if live is None:
                raise K8sApiError("PATCH", name, 404, "NotFound", {"message": "not found"})
            wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != live["metadata"]["resourceVersion"]:
                raise K8sApiError("PATCH", name, 409, "Conflict", {"message": "the object has been modified"})
            new = _merge_patch(live, patch)
            new["metadata"]["resourceVersion"] = str(next(self._rv))
            if not dry_run:
                self.store[key] = new
            return copy.deepcopy(new)
