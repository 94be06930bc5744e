# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply, prune and tear down the objects of one meshguard.egress policy (the engine behind
the ``meshguard.egress.egress_apply`` module). One room per job:

- ``runner``: the orchestration, ``converge`` and ``apply_objects`` in named steps;
- ``reads``: what to read and the concurrent LIST requests that read it;
- ``checks``: refusals that need no write (input, foreign objects, host conflicts);
- ``objects``: one object's identity, hash, in-sync test and diff;
- ``run``: the state of one run (settings, results, outcomes, the worker pool);
- ``prune``: deletes of what is no longer wanted, in reverse phase order;
- ``waiter``: waiting until the gateway Deployment is Available;
- ``errors``: ``ApplyError``, the text of an API error, the result of a failed run;
- ``meshconfig``: Istio's mesh ConfigMap, edited in place (the text patch and its restore, the
  merge on the cluster), the one object apply changes that is not ours.

Not here: the kinds and phases (kinds.py), labels (labels.py), the Namespace manifest
(builder_gateway.py), what a policy wants of the mesh (builder.mesh_config), the HTTP client (k8s_client.py).
"""
