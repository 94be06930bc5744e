# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Live access tests derived from a meshguard.egress policy (the ``verify`` playbook, the
``access_probe`` module). The rooms, in the order a verify run uses them:

1. ``options``    the run's options checked against the policy (``normalize_options``), the
                  user's cases, the policy back from its plain-data form (``policy_from_built``)
2. ``matrix``     the cases the policy implies, one derivation per kind (``build_matrix``); a case
                  is a ``Case`` record (``case``), what a rule lets through is asked in ``reach``
3. ``probe_pods`` where each identity's probes run: the user's pods or a probe pod (its
                  manifest is built beside the builder, ``builder_probe``), ``pick_pod``
4. ``runner``     the cluster part: finds the pods, runs the curl commands over the exec API
                  concurrently with deadlines (``verify_run`` does the whole run)
5. ``outcome``    the curl command of a case, what came back (an ``Outcome`` record) and its
                  judgement (``classify``: allowed, denied, blocked, unexpected or broken)
6. ``report``     result rows, summary, table, mismatch lines, JSON and JUnit

``record`` is the named-record base of Case and Outcome. Everything but ``runner`` is pure
Python on plain data (no cluster, no Ansible); callers import each name from its room.

Not for: building or applying the egress objects themselves (builder.py, apply.py), nor the
policy's own validation (policy.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type
