# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state of one apply run: its ``Settings``, the ``Outcome`` of each object, the result
so far (``Run.record``), and the worker pool that sends requests concurrently (``Run.map``).

Not here: what is read, applied or deleted (reads.py, runner.py, prune.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshguard.egress.plugins.module_utils.apply.errors import ApplyError
from ansible_collections.meshguard.egress.plugins.module_utils.apply.objects import describe, diff_entry

# The options of egress_apply that steer the engine (see apply_objects).
Settings = namedtuple("Settings", "state force check_mode diff api_versions create_namespaces prune workers")

# What happened to one object. `state` names the result list it goes to (created, updated,
# deleted, unchanged, kept) or is "error", and then `error` is the text. `before` and `after`
# are the live and the applied object, for the diff.
Outcome = namedtuple("Outcome", "key state before after error", defaults=(None, None, None))

RESULT_LISTS = ("created", "updated", "deleted", "unchanged", "kept")
CHANGES = ("created", "updated", "deleted")


class Run:
    """One apply_objects call: client, policy, components in scope, settings, result so far."""

    def __init__(self, client, policy_name, components, settings):
        self.client = client
        self.policy_name = policy_name
        self.components = list(components)
        self.settings = settings
        self.workers = max(1, settings.workers)
        self.result = {"changed": False, "created": [], "updated": [], "deleted": [], "unchanged": [],
                       "kept": [], "warnings": [], "diff": []}

    @property
    def check_mode(self):
        return self.settings.check_mode

    def map(self, func, items):
        """[func(item) for item in items], concurrently on up to `workers` threads."""
        items = list(items)
        if len(items) <= 1 or self.workers == 1:
            return [func(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(func, items))

    def fail(self, message):
        raise ApplyError(message, self.summary())

    def summary(self):
        result = dict(self.result)
        for key in RESULT_LISTS:
            result[key] = sorted(result[key])
        result["changed"] = bool(result["created"] or result["updated"] or result["deleted"])
        return result

    def record(self, outcomes):
        """Adds the outcomes to the result (and the diff); returns the error texts."""
        errors = []
        for outcome in outcomes:
            if outcome.error:
                errors.append(outcome.error)
                continue
            self.result[outcome.state].append(describe(outcome.key))
            if self.settings.diff and outcome.state in CHANGES:
                self.result["diff"].append(diff_entry(outcome.key, outcome.before, outcome.after))
        return errors
