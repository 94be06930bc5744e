# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One access test: the ``Case`` record and its stable name.

A case is one request (host, port, scheme, method, path) from one identity (namespace and
service account) with the verdict the policy implies (``expect``). matrix.py derives cases from
a policy, options.py builds the user's cases; both through ``new_case``. The name is the case's
handle for users (``exclude`` patterns) and tests, so its form never changes.

Not for: deciding which cases a policy implies (matrix.py), running them (runner.py) or judging
what came back (outcome.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.validation import identity_text
from ansible_collections.meshguard.egress.plugins.module_utils.verify.record import Record

KINDS = ("allowed", "denied", "unlisted", "bypass", "l7-method", "l7-path", "user")


class Case(Record):
    """One access test; its mapping (and ``as_dict()``, the ``matrix`` result item) has every field.

    ``identity`` is the identity as the policy names it (``ns/*`` for a whole namespace);
    ``service_account`` is the account the probe runs as."""

    FIELDS = ("name", "kind", "rule", "identity", "namespace", "service_account", "host", "port", "scheme",
              "method", "path", "via_gateway", "expect", "note")
    __slots__ = FIELDS
    REQUIRED = True


def case_name(kind, identity, host, port, method, path):
    """The derived name: `<kind> <identity> -> <host>`, `:<port>` for bypass, `<method> <path>` for L7."""
    name = "%s %s -> %s" % (kind, identity, host)
    if kind == "bypass":
        name += ":%d" % port
    if kind in ("l7-method", "l7-path"):
        name += " %s %s" % (method, path)
    return name


def new_case(*, kind, rule, namespace, service_account, run_as, host, port, scheme, method, path, expect,
             via_gateway, note, name=None):
    """A Case for identity namespace/service_account (None: the whole namespace) probed as `run_as`;
    named by ``case_name`` unless `name` is given (a user's case)."""
    identity = identity_text(namespace, service_account)
    return Case(name=case_name(kind, identity, host, port, method, path) if name is None else name,
                kind=kind, rule=rule, identity=identity, namespace=namespace, service_account=run_as,
                host=host, port=port, scheme=scheme, method=method, path=path,
                via_gateway=via_gateway, expect=expect, note=note)
