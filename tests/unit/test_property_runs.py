# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two lengths of the property tests (property_runs.py): quick by default, every test's
own number of examples under MESHGUARD_HYPOTHESIS_PROFILE=long, and no third name."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from hypothesis import settings
from hypothesis.errors import InvalidArgument

from ansible_collections.meshguard.egress.tests.unit import property_runs


@pytest.fixture
def restore_profile():
    name = settings.get_current_profile_name()
    yield
    settings.load_profile(name)


def test_quick_by_default_runs_a_share_of_every_test(restore_profile):
    property_runs.load_profile({})
    assert settings.get_current_profile_name() == property_runs.QUICK
    assert property_runs.QUICK_SHARE == 20
    assert [property_runs.examples(n) for n in (400, 120, 150, 3)] == [20, 6, 8, 1]
    assert settings.default.max_examples == property_runs.QUICK_DEFAULT_EXAMPLES


def test_long_runs_each_test_s_own_number(restore_profile):
    property_runs.load_profile({property_runs.PROFILE_ENV: "long"})
    assert settings.get_current_profile_name() == property_runs.LONG
    assert [property_runs.examples(n) for n in (60, 120, 400)] == [60, 120, 400]


def test_an_unknown_profile_is_an_error(restore_profile):
    with pytest.raises(InvalidArgument):
        property_runs.load_profile({property_runs.PROFILE_ENV: "longer"})
