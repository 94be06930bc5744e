# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The skeleton every built object shares: apiVersion/kind/metadata with the ownership labels
(labels.py), and the name of an object of the whole policy.

Used by the builder rooms (builder.py, builder_gateway.py, builder_netpol.py); nothing here
knows a kind. Not here: the objects themselves, labels and annotations (labels.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.labels import ownership_labels
from ansible_collections.meshguard.egress.plugins.module_utils.policy_model import DEFAULT_POLICY_NAME, NAME_SEPARATOR


def object_meta(policy, name, namespace, component, rule=None, annotations=None):
    """metadata: name, namespace, the ownership labels (with the rule's when given), annotations."""
    labels = ownership_labels(policy.policy_name, component, rule.name if rule is not None else None)
    meta = {"name": name, "namespace": namespace, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    return meta


def manifest(api_version, kind, metadata, spec=None, **extra):
    """An object, keys in the order they are rendered: apiVersion, kind, metadata, spec, `extra`."""
    obj = {"apiVersion": api_version, "kind": kind, "metadata": metadata}
    if spec is not None:
        obj["spec"] = spec
    obj.update(extra)
    return obj


def policy_object_name(policy, what):
    """Name of an object of the whole policy (allow-nothing, anti-bypass, outbound-policy) or the
    base of a rule's names: `<prefix><what>` for the default policy (the seed's names stay
    readable), `<prefix><policy>--<what>` for every other one.

    Two policies never share a name: names of the default policy contain no "--" (rule names,
    policy names and the prefix may not contain it, and the prefix ends where an alphanumeric
    name starts), every other policy's names contain exactly one, right after the policy name.
    """
    if policy.policy_name == DEFAULT_POLICY_NAME:
        return policy.name_prefix + what
    return policy.name_prefix + policy.policy_name + NAME_SEPARATOR + what
