# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by the collection's modules (the doc fragment
meshguard.egress.policy documents them).

The policy options are deliberately shallow here (lists and dicts without suboptions):
the policy model in module_utils/policy.py validates them in depth, so that every bad
input gets one message naming the rule (index and name) and the field, which Ansible's
generic suboption validation cannot do. All defaults live in policy.py; the top-level
ones are used here too (ansible-test checks them against the docs).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.policy import TOP_DEFAULTS

POLICY_ARG_SPEC = dict(
    rules=dict(type="list", elements="dict", default=[]),
    gateway=dict(type="dict"),
    mesh=dict(type="dict"),
    trust_domain=dict(type="str", default=TOP_DEFAULTS["trust_domain"]),
    cluster_domain=dict(type="str", default=TOP_DEFAULTS["cluster_domain"]),
    api_versions=dict(type="dict"),
    network_policy=dict(type="dict"),
    policy_name=dict(type="str", default=TOP_DEFAULTS["policy_name"]),
    name_prefix=dict(type="str", default=TOP_DEFAULTS["name_prefix"]),
)

POLICY_OPTION_NAMES = tuple(POLICY_ARG_SPEC)


def policy_from_params(params):
    """The raw policy mapping from module params: options left unset are omitted."""
    return dict((key, params[key]) for key in POLICY_OPTION_NAMES if params.get(key) is not None)
