# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The oldest kubernetes client we claim is the one we test: requirements.txt's floor, the pin of
tests/requirements-oldest.txt (make test-oldest-client, tests/lab/test_oldest_client.py), the
client's MIN_KUBERNETES check and the modules' DOCUMENTATION agree."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import MIN_KUBERNETES
from ansible_collections.meshguard.egress.plugins.modules import access_probe, egress_apply

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))


def _pin(path, operator):
    with open(os.path.join(ROOT, path)) as handle:
        return re.search(r"^kubernetes%s(\S+)\s*$" % re.escape(operator), handle.read(), re.M).group(1)


def test_the_claimed_floor_is_the_tested_client():
    floor = _pin("requirements.txt", ">=")
    assert floor == _pin(os.path.join("tests", "requirements-oldest.txt"), "==") == MIN_KUBERNETES
    for module in (egress_apply, access_probe):
        assert "  - kubernetes >= %s (Python library" % floor in module.DOCUMENTATION
