# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting, apart from applying: until every Deployment among the applied objects (the
managed egress gateway) is Available with its current generation observed.

Not here: applying (runner.py). The clock and the sleep are passed in (tests use fakes).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.meshguard.egress.plugins.module_utils.apply.errors import ApplyError, api_error
from ansible_collections.meshguard.egress.plugins.module_utils.apply.objects import describe, object_key
from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import K8sApiError


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
                raise ApplyError(api_error(exc, "get Deployment %s/%s" % (meta.get("namespace"), meta["name"])))
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
