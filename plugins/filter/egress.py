# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the apply roles use on the built objects (logic in module_utils/labels.py and
module_utils/builder_gateway.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.labels import select_components
from ansible_collections.meshguard.egress.plugins.module_utils.builder_gateway import gateway_workload


class FilterModule(object):
    def filters(self):
        return {"components": select_components, "gateway_workload": gateway_workload}
