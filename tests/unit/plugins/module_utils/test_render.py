# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The YAML emitter writes what a YAML loader reads back unchanged."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import yaml

from hypothesis import given, settings, strategies as st

from ansible_collections.meshguard.egress.plugins.module_utils.builder import build_groups
from ansible_collections.meshguard.egress.plugins.module_utils.policy import normalize_policy
from ansible_collections.meshguard.egress.plugins.module_utils.render import render_files, to_yaml
from ansible_collections.meshguard.egress.tests.unit.property_runs import examples

TRICKY = ["", "*", ".", "yes", "No", "ON", "off", "y", "n", "null", "~", "true", "False", "0", "0755", "1e3",
          "1_000", "0x1f", "12:30", "2026-11-26", ".inf", "-", "- x", "a: b", "#c", "a #b", "'q'", '"q"', "x\ny",
          " lead", "trail ", "@at", "`tick", "!tag", "&anchor", "*alias", "{a}", "[a]", "%p", "|", ">",
          "A\n", "name\n", "www.baidu.com:80", "cluster.local/ns/a/sa/b", "/api/*", "*.json", "ünïcödé", "tab\there", "\\back"]

scalars = (st.sampled_from(TRICKY) | st.text(max_size=12) | st.integers(-10 ** 6, 10 ** 6) | st.booleans()
           | st.none())
keys = st.sampled_from(TRICKY) | st.text(min_size=0, max_size=8)
data = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(keys, children, max_size=4), max_leaves=25)


@settings(max_examples=examples(400), deadline=None)
@given(st.dictionaries(keys, data, max_size=5) | st.lists(data, max_size=5))
def test_round_trip(value):
    assert yaml.safe_load(to_yaml(value)) == value


def test_known_shapes():
    assert to_yaml({"a": [{"b": 1, "c": ["x", "y"]}, "z"], "e": {}, "f": []}) == (
        "a:\n- b: 1\n  c:\n  - x\n  - \"y\"\n- z\ne: {}\nf: []\n")
    assert to_yaml({"ports": ["8080"], "exportTo": ["*", "."], "v": "true"}) == (
        'ports:\n- "8080"\nexportTo:\n- "*"\n- "."\nv: "true"\n')


def test_rendered_examples_load_back_to_the_built_objects(example, example_names):
    for name in example_names:
        policy = normalize_policy(example(name))
        groups = build_groups(policy)
        files = render_files(policy, groups)
        for group, objs in groups:
            assert list(yaml.safe_load_all(files[group + ".yaml"])) == objs, (name, group)
