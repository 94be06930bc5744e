# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The policy the benchmarks run on (bench_render.py, bench_apply.py): `count` rules of three
identities each, TLS modes in turn, hosts spread over 17 partner domains. Not a test fixture:
the unit and lab tests write their own policies.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def rules(count, teams=50, batches=7, http=True):
    """The rules svc-0000 ... : rule i is allowed for team-<i mod teams>/app-<i>,
    team-<i+1 mod teams>/worker and the whole namespace batch-<i mod batches>. teams and
    batches bound how many namespaces the rules name (bench_apply creates each of them in the
    cluster); http=True adds HTTP method and path limits to every other non-passthrough rule."""
    result = []
    for i in range(count):
        rule = {
            "name": "svc-%04d" % i,
            "hosts": ["api%d.partner%d.example.com" % (i, i % 17)],
            "tls": ("originate", "passthrough", "none")[i % 3],
            "allow": [{"namespace": "team-%d" % (i % teams), "service_account": "app-%d" % i},
                      {"namespace": "team-%d" % ((i + 1) % teams), "service_account": "worker"},
                      "batch-%d" % (i % batches)],
        }
        if http and i % 3 != 1 and i % 2:
            rule["http"] = {"methods": ["GET", "POST"], "paths": ["/v1/*", "/health"]}
        result.append(rule)
    return result


def namespaces(rule_list):
    """The client namespaces the rules name, sorted."""
    found = set()
    for rule in rule_list:
        for entry in rule["allow"]:
            found.add(entry if isinstance(entry, str) else entry["namespace"])
    return sorted(found)
