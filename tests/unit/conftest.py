# -*- coding: utf-8 -*-
# Make this checkout importable as ansible_collections.meshguard.egress for plain pytest.
# Under ansible-test the collection already sits in .../ansible_collections/meshguard/egress.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PARTS = _ROOT.split(os.sep)
if _PARTS[-3:-1] != ["ansible_collections", "meshguard"]:
    _COLLECTIONS = os.path.join(_ROOT, "build", "collections")
    _LINK = os.path.join(_COLLECTIONS, "ansible_collections", "meshguard", "egress")
    if not os.path.exists(_LINK):
        os.makedirs(os.path.dirname(_LINK), exist_ok=True)
        os.symlink(_ROOT, _LINK)
    if _COLLECTIONS not in sys.path:
        sys.path.insert(0, _COLLECTIONS)

import pytest  # noqa: E402

from ansible_collections.meshguard.egress.tests.unit.property_runs import load_profile  # noqa: E402

# how many examples the property tests try: quick by default, long in CI (property_runs.py)
load_profile()

EXAMPLES_DIR = os.path.join(_ROOT, "examples")
VAR_PREFIX = "meshguard_egress_"


def load_example(name):
    """An examples/<name>.yml vars file as module options (prefix stripped)."""
    import yaml

    with open(os.path.join(EXAMPLES_DIR, name + ".yml")) as handle:
        data = yaml.safe_load(handle)
    return dict((key[len(VAR_PREFIX):], value) for key, value in data.items())


@pytest.fixture
def example():
    return load_example


@pytest.fixture
def example_names():
    return sorted(f[:-4] for f in os.listdir(EXAMPLES_DIR) if f.endswith(".yml"))
