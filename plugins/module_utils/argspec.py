# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by the collection's modules (the doc fragment
meshguard.egress.policy documents them).

The policy options are deliberately shallow here (lists and dicts without suboptions):
normalize_policy (module_utils/policy.py) validates them in depth, so that every bad
input gets one message naming the rule (index and name) and the field, which Ansible's
generic suboption validation cannot do. All defaults live in policy_model.py; the top-level
ones are used here too (ansible-test checks them against the docs).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib

from ansible_collections.meshguard.egress.plugins.module_utils.policy_model import TOP_DEFAULTS

POLICY_ARG_SPEC = dict(
    # raw: the policy model checks types too, so that a wrong type gets the same message
    # naming the field as every other problem (not Ansible's generic conversion error).
    rules=dict(type="raw", default=[]),
    gateway=dict(type="raw"),
    mesh=dict(type="raw"),
    trust_domain=dict(type="str", default=TOP_DEFAULTS["trust_domain"]),
    cluster_domain=dict(type="str", default=TOP_DEFAULTS["cluster_domain"]),
    api_versions=dict(type="raw"),
    network_policy=dict(type="raw"),
    network_policy_discovered=dict(type="list", elements="str", default=[]),
    policy_name=dict(type="str", default=TOP_DEFAULTS["policy_name"]),
    name_prefix=dict(type="str", default=TOP_DEFAULTS["name_prefix"]),
    allow_empty=dict(type="raw", default=TOP_DEFAULTS["allow_empty"]),
)

POLICY_OPTION_NAMES = tuple(POLICY_ARG_SPEC)
# The roles' variables are the options with this prefix (roles/policy/meta/argument_specs.yml;
# tests/unit/test_role_specs.py keeps the two in step).
ROLE_VARIABLE_PREFIX = "meshguard_egress_"


def policy_from_params(params):
    """The raw policy mapping from module params: options left unset are omitted."""
    return dict((key, params[key]) for key in POLICY_OPTION_NAMES if params.get(key) is not None)


def unknown_variable_warnings(names, known=None):
    """One warning per unknown `meshguard_egress_*` variable name, naming the closest known
    policy variable when one is close (a typo such as meshguard_egress_rule)."""
    known = ["%s%s" % (ROLE_VARIABLE_PREFIX, key) for key in POLICY_OPTION_NAMES] if known is None else known
    # compared without the common prefix, which would make every name look alike
    suffixes = dict((name[len(ROLE_VARIABLE_PREFIX):], name) for name in known if name.startswith(ROLE_VARIABLE_PREFIX))
    warnings = []
    for name in sorted(set(names or [])):
        close = difflib.get_close_matches(name[len(ROLE_VARIABLE_PREFIX):], list(suffixes), n=1, cutoff=0.75)
        warnings.append("variable %s is not a meshguard.egress setting and is ignored%s" % (
            name, "; did you mean %s?" % suffixes[close[0]] if close else ""))
    return warnings
