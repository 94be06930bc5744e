# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The policy variables are spelled once: the internal role meshguard.egress.policy declares
them, with the same types and defaults as the egress_resources module's options; no other
role declares them; and the list of known variables (for the typo warning) is every option
of every role."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os

import yaml

from ansible_collections.meshguard.egress.plugins.module_utils.argspec import (
    POLICY_ARG_SPEC, ROLE_VARIABLE_PREFIX, unknown_variable_warnings)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
ROLES = os.path.join(ROOT, "roles")


def _yaml(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


def _role_options():
    """{role: {option: spec}} of every role's main entry point."""
    result = {}
    for path in sorted(glob.glob(os.path.join(ROLES, "*", "meta", "argument_specs.yml"))):
        role = path.split(os.sep)[-3]
        options = {}
        for entry in (_yaml(path)["argument_specs"] or {}).values():
            options.update(entry.get("options") or {})
        result[role] = options
    return result


def test_policy_role_declares_exactly_the_module_options_with_their_types_and_defaults():
    options = _role_options()["policy"]
    defaults = _yaml(os.path.join(ROLES, "policy", "defaults", "main.yml"))
    for key, spec in POLICY_ARG_SPEC.items():
        name = ROLE_VARIABLE_PREFIX + key
        assert name in options, "roles/policy does not declare %s" % name
        assert options[name]["type"] == spec["type"], name
        assert options[name].get("elements") == spec.get("elements"), name
        assert options[name].get("default") == spec.get("default", {}), name
        assert defaults[name] == options[name]["default"], "defaults/main.yml disagrees for %s" % name
    extra = set(options) - set(ROLE_VARIABLE_PREFIX + key for key in POLICY_ARG_SPEC)
    assert extra == set(["meshguard_egress_policy_render", "meshguard_egress_policy_resources"])


def test_no_other_role_declares_or_defaults_a_policy_variable():
    policy_vars = set(ROLE_VARIABLE_PREFIX + key for key in POLICY_ARG_SPEC)
    for role, options in _role_options().items():
        if role == "policy":
            continue
        assert not policy_vars & set(options), role
        defaults = os.path.join(ROLES, role, "defaults", "main.yml")
        if os.path.exists(defaults):
            assert not policy_vars & set(_yaml(defaults) or {}), role


def test_known_variables_are_every_option_of_every_role():
    known = _yaml(os.path.join(ROLES, "policy", "vars", "main.yml"))["meshguard_egress__known_variables"]
    declared = sorted(set(name for options in _role_options().values() for name in options))
    assert sorted(known) == declared


def test_a_typo_gets_a_warning_naming_the_intended_variable():
    warnings = unknown_variable_warnings(["meshguard_egress_rule", "meshguard_egress_whatever"])
    assert warnings[0].endswith("did you mean meshguard_egress_rules?")
    assert "did you mean" not in warnings[1]
