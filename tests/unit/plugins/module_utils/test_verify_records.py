# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/verify/: the Case and Outcome records (keywords only, read-only, the same keys as
the dicts they replace) and the rooms' imports (no circle)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import copy
import json
import pickle
import os

import pytest

from ansible_collections.meshguard.egress.plugins.module_utils.verify.case import Case, new_case
from ansible_collections.meshguard.egress.plugins.module_utils.verify.outcome import Outcome, classify

CASE = dict(kind="allowed", rule="baidu", namespace="bookinfo", service_account=None, run_as="default",
            host="www.baidu.com", port=80, scheme="http", method="GET", path="/", expect="allowed",
            via_gateway=True, note="allowed by rule baidu")


def test_case_is_built_with_keywords_and_reads_as_its_json_dict():
    case = new_case(**CASE)
    assert (case.name, case.identity, case.service_account) == \
        ("allowed bookinfo/* -> www.baidu.com", "bookinfo/*", "default")
    assert case["host"] == case.host == "www.baidu.com"
    assert list(case.as_dict()) == ["name", "kind", "rule", "identity", "namespace", "service_account", "host",
                                    "port", "scheme", "method", "path", "via_gateway", "expect", "note"]
    assert dict(case) == case.as_dict() and case == case.as_dict()
    assert json.loads(json.dumps(case.as_dict())) == case
    assert copy.deepcopy(case) == case and pickle.loads(pickle.dumps(case)) == case
    assert isinstance(copy.copy(case), Case)
    with pytest.raises(TypeError):
        new_case("allowed", "baidu")  # pylint: disable=missing-kwoa,too-many-function-args
    with pytest.raises(AttributeError):
        case.host = "other"


def test_case_names_every_missing_and_unknown_field():
    with pytest.raises(TypeError) as info:
        Case(name="x", kind="user", colour="red")
    assert "unknown field colour" in str(info.value) and "missing field rule, identity" in str(info.value)


def test_outcome_holds_what_was_recorded_and_nothing_else():
    out = Outcome(rc=0, stdout="x", timeout=5)
    assert dict(out) == {"rc": 0, "stdout": "x", "timeout": 5}
    assert out.deadline is None and "deadline" not in out and out.get("deadline", "?") == "?"
    assert Outcome.of(out) is out and Outcome.of({"rc": 7}) == {"rc": 7}
    assert "deadline" not in copy.deepcopy(out) and copy.deepcopy(out) == out
    with pytest.raises(TypeError):
        Outcome(exit_code=0)
    # a recorded outcome and the same plain mapping are judged alike
    assert classify({"scheme": "http"}, Outcome(rc=7)) == classify({"scheme": "http"}, {"rc": 7})


# Each room may import only rooms above it: no import circle.
ROOM_ORDER = ("record", "case", "reach", "options", "matrix", "probe_pods", "outcome", "report", "runner")
PACKAGE = "ansible_collections.meshguard.egress.plugins.module_utils.verify"


def test_rooms_import_only_rooms_above_them():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.join(here, "..", "..", "..", "..", "plugins", "module_utils", "verify")
    rooms = sorted(f[:-3] for f in os.listdir(root) if f.endswith(".py") and f != "__init__.py")
    assert rooms == sorted(ROOM_ORDER)
    for index, room in enumerate(ROOM_ORDER):
        with open(os.path.join(root, room + ".py")) as handle:
            tree = ast.parse(handle.read())
        used = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE):
                used.add(node.module[len(PACKAGE) + 1:] or node.names[0].name)
        assert used <= set(ROOM_ORDER[:index]), (room, sorted(used - set(ROOM_ORDER[:index])))
