# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How an apply fails: ``ApplyError`` (with what was done before), the one-line text of an
API error for a user, and the module result of a failed run.

Not here: deciding to fail (the other rooms of apply/), the HTTP error itself (k8s_client.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import K8sApiError


class ApplyError(Exception):
    """The apply stopped. ``partial`` holds what was done before (the same shape as a result)."""

    def __init__(self, message, partial=None):
        super(ApplyError, self).__init__(message)
        self.partial = partial or {}


def api_error(exc, doing):
    """`doing` ("apply ServiceEntry istio-system/x") and what went wrong, said for a user."""
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


def failure_result(exc):
    """The module result for an ApplyError: what was done before it failed (changed when
    anything was written), without the diff and warnings."""
    partial = dict((k, v) for k, v in exc.partial.items() if k not in ("diff", "warnings"))
    if exc.partial.get("created") or exc.partial.get("updated") or exc.partial.get("deleted"):
        partial["changed"] = True
    return partial
