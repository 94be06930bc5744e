# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared validation helpers: the error collector, coercions, and the one identity parser."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.meshguard.egress.plugins.module_utils import validation as val


def _parse(entry):
    errs = val.Errors()
    return val.parse_identity(errs, "x", entry), errs.items


def test_errors_keep_every_problem_with_its_path_in_order():
    errs = val.Errors()
    errs.add("rules[0] (baidu).hosts[1]", "duplicate host 'a.example.com'")
    errs.add("gateway", "must be a mapping, got list")
    assert errs.items == ["rules[0] (baidu).hosts[1]: duplicate host 'a.example.com'",
                          "gateway: must be a mapping, got list"]
    assert str(val.InputError(errs.items)).startswith("invalid meshguard.egress input (2 problems):\n  - rules[0]")


@pytest.mark.parametrize("entry, parsed", [
    ("shop", ("shop", None)),
    ("shop/checkout", ("shop", "checkout")),
    ({"namespace": "shop"}, ("shop", None)),
    ({"namespace": "shop", "service_account": ""}, ("shop", None)),
    ({"namespace": "shop", "service_account": "checkout.v2"}, ("shop", "checkout.v2")),
])
def test_identity_forms(entry, parsed):
    assert _parse(entry) == (parsed, [])


@pytest.mark.parametrize("entry, problems", [
    ("a/b/c", ["x: 'a/b/c': use 'namespace' or 'namespace/service_account'"]),
    ("shop/", ["x.service_account: is empty in 'shop/'; write just the namespace to allow the whole namespace"]),
    ("/checkout", ["x.namespace: is required: a service account is only meaningful inside a namespace "
                   "(write 'namespace/service_account')"]),
    ("shop/*", ["x.service_account: wildcards are not allowed; omit service_account to allow the whole namespace"]),
    ("*", ["x.namespace: wildcards are not allowed: every allowed caller must be named"]),
    ({"service_account": "checkout"}, ["x.namespace: is required: a service account is only meaningful inside a "
                                       "namespace"]),
    ({"namespace": 3}, ["x.namespace: must be a string, got 3"]),
    (42, ["x: must be a mapping {namespace, service_account} or a 'namespace[/sa]' string, got int"]),
])
def test_identity_problems(entry, problems):
    assert _parse(entry) == (None, problems)


def test_identity_reports_every_problem_of_an_entry_at_once():
    parsed, problems = _parse({"namespace": "Shop", "service_account": "Check_Out", "pod": "p", "labels": {}})
    assert parsed is None
    assert problems == [
        "x: unknown key 'labels' (allowed: namespace, service_account)",
        "x: unknown key 'pod' (allowed: namespace, service_account)",
        "x.namespace: 'Shop' is not a valid namespace name (DNS-1123 label)",
        "x.service_account: 'Check_Out' is not a valid service account name (DNS-1123 subdomain)",
    ]


def test_identity_printed_with_a_star_for_a_whole_namespace():
    assert val.identity_text("shop", None) == "shop/*"
    assert val.identity_text("shop", "checkout") == "shop/checkout"


@pytest.mark.parametrize("helper, args, value, problem", [
    (val.as_bool, (False,), "Yes", None),
    (val.as_bool, (False,), "maybe", "x: must be a boolean, got 'maybe'"),
    (val.as_int, (None, 1, 65535), " 8443 ", None),
    (val.as_int, (None, 1, 65535), True, "x: must be an integer, got boolean True"),
    (val.as_int, (None, 1, 65535), 0, "x: 0 is out of range (1-65535)"),
    (val.as_list, (), "a", "x: must be a list, got str"),
    (val.as_str, (None, True), "", "x: is required"),
    (val.enum, (("a", "b"), "a"), "c", "x: 'c' is not one of a, b"),
])
def test_coercions(helper, args, value, problem):
    errs = val.Errors()
    helper(errs, "x", value, *args)
    assert errs.items == ([problem] if problem else [])


def test_labels_map_judges_keys_and_values_not_emptiness():
    errs = val.Errors()
    val.check_labels_map(errs, "sel", {})
    val.check_labels_map(errs, "sel", {"ok": "yes", "bad key": "x", "k": "bad value"})
    assert [item.split(":")[0] for item in errs.items] == ["sel.bad key", "sel.k"]


def test_host_problem_refuses_the_gateway_alias_domain():
    assert "aliases" in val.host_problem("www.baidu.com." + val.ORIGINATION_ALIAS_DOMAIN)
    assert val.host_problem("www.baidu.com") is None
