# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The table of kinds (module_utils/kinds.py) against what the builder emits and what the
client and the apply engine look up in it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.meshguard.egress.plugins.module_utils import kinds
from ansible_collections.meshguard.egress.plugins.module_utils.builder import build_resources
from ansible_collections.meshguard.egress.plugins.module_utils.builder_gateway import gateway_workload, namespace_object
from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import KNOWN_RESOURCES, split_api_version
from ansible_collections.meshguard.egress.plugins.module_utils.labels import COMPONENTS, LABEL_COMPONENT
from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy

ROW = dict((k.group_kind, k) for k in kinds.KINDS)


def _everything(example):
    """Every object the collection builds for the examples, with every optional part on."""
    objs = []
    for name in ("baidu", "mixed", "passthrough", "namespace-get-only"):
        for extra in ({}, {"network_policy": {"enabled": True, "namespaces": ["bookinfo"]}},
                      {"mesh": {"method": "sidecar"}}):
            raw = dict(example(name), **extra)
            built = build_resources(normalize_policy(raw))
            objs.extend(built)
            objs.extend(gateway_workload(built, autoscaling={"enabled": True}))
    objs.append(namespace_object("team-a", "default", "gateway"))
    return objs


def test_every_built_object_is_a_row_of_its_component(example):
    seen = set()
    for obj in _everything(example):
        group, version = split_api_version(obj["apiVersion"])
        row = ROW.get((group, obj["kind"]))
        assert row is not None, "%s %s is not in kinds.KINDS" % (obj["apiVersion"], obj["kind"])
        component = obj["metadata"]["labels"][LABEL_COMPONENT]
        assert component in row.components, (obj["kind"], component)
        assert row.namespaced == bool(obj["metadata"].get("namespace")), obj["kind"]
        seen.add(row.group_kind)
    # every row with a component is built by some example: the table lists nothing we never make
    assert set(k.group_kind for k in kinds.KINDS if k.components) == seen


def test_non_istio_objects_are_built_with_the_table_version(example):
    for obj in _everything(example):
        group, version = split_api_version(obj["apiVersion"])
        if not group.endswith("istio.io"):
            assert obj["apiVersion"] == kinds.api_version_of(obj["kind"]), obj["kind"]


def test_one_version_per_group_and_one_row_per_kind_name():
    for row in kinds.KINDS:
        assert kinds.DEFAULT_VERSIONS[row.group] == row.version, row
    names = [k.kind for k in kinds.KINDS]
    assert len(names) == len(set(names))  # phase_of and api_version_of look up by kind name
    assert set(c for k in kinds.KINDS for c in k.components) == set(COMPONENTS)


def test_lookups_derive_from_the_table():
    assert KNOWN_RESOURCES[("apps", "Deployment")] == ("deployments", True)
    assert KNOWN_RESOURCES[("", "Namespace")] == ("namespaces", False)
    assert set(KNOWN_RESOURCES) == set(ROW)
    assert kinds.CLUSTER_SCOPED == frozenset([("", "Namespace")])
    assert kinds.kinds_of("default-deny") == (("security.istio.io", "AuthorizationPolicy"),)
    assert kinds.kinds_of("nonsense") == ()
    assert kinds.api_version_for("autoscaling") == "autoscaling/v2"
    assert kinds.api_version_for("networking.istio.io", {"networking.istio.io": "v1beta1"}) == \
        "networking.istio.io/v1beta1"
    assert kinds.api_version_for("") == "v1" and kinds.api_version_for("example.com") == "example.com/v1"


@pytest.mark.parametrize("first,then", [
    ("Namespace", "ServiceAccount"), ("Role", "RoleBinding"), ("Deployment", "AuthorizationPolicy"),
    ("AuthorizationPolicy", "VirtualService"), ("AuthorizationPolicy", "ServiceEntry")])
def test_phases_order_what_must_exist_first(first, then):
    assert kinds.phase_of(first) < kinds.phase_of(then)
    assert kinds.phase_of("SomethingElse") == kinds.PHASE_ROUTING
    assert set(kinds.PHASE_NAMES) == set(k.phase for k in kinds.KINDS)
