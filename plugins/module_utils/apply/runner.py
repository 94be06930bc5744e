# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The orchestration of an apply: ``converge`` (one egress_apply run: the mesh ConfigMap,
the objects, the wait) and ``apply_objects``, in named steps:

1. **Check the input** (no request yet): every object carries this policy's ownership labels
   (labels.py) and a component the caller manages.
2. **Plan and read the cluster** (reads.py): concurrently, a few LIST requests per kind,
   never one GET per object.
3. **Refuse foreign objects and host conflicts** before writing anything (checks.py): an
   object of the same kind and name without this policy's labels (we never take over what we
   did not create), or a host of ours claimed by another policy's rule objects.
4. **Ensure namespaces**: missing ones are created (``create_namespaces``) or reported.
5. **Apply by phase** (kinds.py: namespaces, the gateway workload, AuthorizationPolicies so
   that a route never exists before the policy that guards it, then the other Istio objects
   and NetworkPolicies), concurrently within a phase, with server-side apply (field manager
   ``meshguard-egress``, strict field validation, conflicts reported unless ``force``). An
   object whose live copy is in sync (objects.py) is not sent at all: a converged policy
   re-applies with zero writes. ``changed`` comes from the server (a new resourceVersion).
6. **Prune** (prune.py) this policy's objects of the managed components that are no longer
   wanted; ``state=absent`` is a prune of everything in scope.

Check mode is the API server's dry run (``dryRun=All``); nothing is written.

Not here: reading (reads.py), refusing (checks.py), deleting (prune.py), waiting
(waiter.py), the mesh ConfigMap (apply/meshconfig.py), the Namespace manifest (builder_gateway.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshguard.egress.plugins.module_utils.apply.checks import (
    check_objects, foreign_objects, host_conflicts, sidecar_warnings)
from ansible_collections.meshguard.egress.plugins.module_utils.apply.errors import ApplyError, api_error
from ansible_collections.meshguard.egress.plugins.module_utils.apply.objects import (
    clean_for_diff, describe, in_sync, object_key, with_hash)
from ansible_collections.meshguard.egress.plugins.module_utils.apply.prune import prune_unwanted
from ansible_collections.meshguard.egress.plugins.module_utils.apply.reads import (
    missing_namespaces, read_cluster, scan_plan)
from ansible_collections.meshguard.egress.plugins.module_utils.apply.run import Outcome, Run, Settings
from ansible_collections.meshguard.egress.plugins.module_utils.apply.waiter import wait_available
from ansible_collections.meshguard.egress.plugins.module_utils.builder_gateway import namespace_object
from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import K8sApiError
from ansible_collections.meshguard.egress.plugins.module_utils.kinds import PHASE_NAMES, phase_of
from ansible_collections.meshguard.egress.plugins.module_utils.labels import (
    COMPONENT_GATEWAY, COMPONENT_RULE, COMPONENTS, is_owned, select_components)
from ansible_collections.meshguard.egress.plugins.module_utils.apply.meshconfig import mesh_configmap


def converge(client, resources, policy_name, components, *, state="present", mesh=None, force=False,
             check_mode=False, diff=False, api_versions=None, create_namespaces=False, prune=True, workers=8,
             wait=False, wait_timeout=300):
    """One egress_apply run: the objects of `components` applied (or removed), pruned, the
    gateway waited for, and the mesh ConfigMap (`mesh`, configmap_to_manage's answer, or None)
    changed. Returns (result, warnings); raises ApplyError.

    The mesh setting goes first on apply (REGISTRY_ONLY before any route: fail closed) and last
    on teardown (the mesh stays closed until our routes are gone)."""
    result = {"changed": False, "mesh_changed": False}
    warnings, mesh_diffs = [], []

    def mesh_step(step_state):
        done = mesh_configmap(client, mesh, policy_name, state=step_state, check_mode=check_mode, diff=diff)
        result["mesh_changed"] = done["changed"]
        mesh_diffs.extend(done["diff"])
        warnings.extend(done["warnings"])

    selected = select_components(resources, components)
    if mesh and state == "present":
        mesh_step("present")
    applied = apply_objects(client, selected, policy_name, components, state=state, force=force,
                            check_mode=check_mode, diff=diff, api_versions=api_versions,
                            create_namespaces=create_namespaces, prune=prune, workers=workers)
    if wait and state == "present" and not check_mode:
        wait_available(client, selected, wait_timeout)
    if mesh and state == "absent":
        mesh_step("absent")
    warnings = applied.pop("warnings") + warnings
    diffs = applied.pop("diff") + mesh_diffs
    result.update(applied)
    result["changed"] = bool(applied["changed"] or result["mesh_changed"])
    if diff and diffs:
        result["diff"] = diffs
    return result, warnings


def apply_objects(client, objects, policy_name, components, *, state="present", force=False, check_mode=False,
                  diff=False, api_versions=None, create_namespaces=False, prune=True, workers=8):
    """Apply `objects` (state present) or remove everything in scope (state absent).

    Returns a dict: changed, created, updated, deleted, unchanged, kept (lists of
    "Kind namespace/name"), warnings (list of str), diff (list of before/after dicts).
    Raises ApplyError (with .partial) on refusal or on an API error.
    """
    settings = Settings(state=state, force=force, check_mode=check_mode, diff=diff, api_versions=api_versions,
                        create_namespaces=create_namespaces, prune=prune, workers=workers)
    components = list(components)
    objects = list(objects or []) if state == "present" else []
    _check_input(objects, policy_name, components)
    run = Run(client, policy_name, components, settings)
    managed, live = _plan_and_read(run, objects)
    _refuse_foreign_objects_and_host_conflicts(run, objects, managed, live)
    missing, namespace_objects = _ensure_namespaces(run, objects, live)
    objects += namespace_objects
    _apply_by_phase(run, objects, live, missing)
    if prune or state == "absent":
        prune_unwanted(run, managed, _wanted_keys(run, objects, managed))
    return run.summary()


def _check_input(objects, policy_name, components):
    """Step 1: raise ApplyError, before any request, for unknown components and for objects
    that are not this policy's."""
    unknown = sorted(set(components) - set(COMPONENTS))
    if unknown:
        raise ApplyError("unknown components: %s (known: %s)" % (", ".join(unknown), ", ".join(COMPONENTS)))
    problems = check_objects(objects, policy_name, components)
    if problems:
        raise ApplyError("the objects to apply are not this policy's; nothing was sent to the cluster:\n  - "
                         + "\n  - ".join(problems))


def _plan_and_read(run, objects):
    """Step 2: (managed, live) as read_cluster returns them."""
    kinds, namespaces = scan_plan(objects, run.components, run.settings.api_versions)
    return read_cluster(run, objects, kinds, namespaces)


def _refuse_foreign_objects_and_host_conflicts(run, objects, managed, live):
    """Step 3: fail the run, before any write, on every foreign object and host conflict."""
    problems = foreign_objects(objects, live, run.policy_name)
    if COMPONENT_RULE in run.components:
        problems.extend(host_conflicts(objects, managed, run.policy_name))
    if problems:
        run.fail("nothing was changed:\n  - " + "\n  - ".join(problems))
    run.result["warnings"].extend(sidecar_warnings(objects, live, run.policy_name))


def _namespaces_of(objects):
    return sorted(set(object_key(o)[2] for o in objects if object_key(o)[2]))


def _ensure_namespaces(run, objects, live):
    """Step 4: (missing namespaces, Namespace objects to create for them). Without
    create_namespaces, a missing namespace fails the run."""
    needed = _namespaces_of(objects)
    if not needed:
        return set(), []
    missing = missing_namespaces(run, needed, live)
    if missing and not run.settings.create_namespaces:
        run.fail("namespace%s %s do%s not exist; nothing was changed (the egress_gateway role creates the "
                 "gateway namespace; client namespaces are yours)" % (
                     "s" if len(missing) > 1 else "", ", ".join(sorted(missing)),
                     "" if len(missing) > 1 else "es"))
    component = COMPONENT_GATEWAY if COMPONENT_GATEWAY in run.components else run.components[0]
    return missing, [namespace_object(name, run.policy_name, component) for name in sorted(missing)]


def _apply_by_phase(run, objects, live, missing_namespaces):
    """Step 5: apply phase after phase, concurrently within one; an error stops the run."""
    phases = {}
    for obj in objects:
        phases.setdefault(phase_of(obj["kind"]), []).append(obj)
    for phase in sorted(phases):
        outcomes = run.map(lambda obj: _apply_one(run, obj, live.get(object_key(obj)), missing_namespaces),
                           phases[phase])
        errors = run.record(outcomes)
        if errors:
            run.fail("apply stopped in phase %r; later phases and pruning were not run:\n  - %s" % (
                PHASE_NAMES[phase], "\n  - ".join(sorted(errors))))


def _apply_one(run, obj, live, missing_namespaces):
    key = object_key(obj)
    if in_sync(obj, live):
        return Outcome(key=key, state="unchanged", before=live)
    body = with_hash(obj)
    if run.check_mode and key[2] in missing_namespaces:
        # The namespace would be created first; a dry run in a missing namespace is refused.
        return Outcome(key=key, state="created", before=live, after=body)
    try:
        applied = run.client.apply(body, force=run.settings.force, dry_run=run.check_mode)
    except K8sApiError as exc:
        return Outcome(key=key, state="error", before=live, error=api_error(exc, "apply %s" % describe(key)))
    if live is None:
        return Outcome(key=key, state="created", before=live, after=applied)
    if run.check_mode:
        same = clean_for_diff(applied) == clean_for_diff(live)
    else:
        same = (applied.get("metadata") or {}).get("resourceVersion") == live["metadata"].get("resourceVersion")
    return Outcome(key=key, state="unchanged" if same else "updated", before=live, after=applied)


def _wanted_keys(run, objects, managed):
    """Step 6's scope: what prune keeps. The wanted objects, and a Namespace this policy
    created earlier while objects of ours go to it."""
    wanted = set(object_key(o) for o in objects)
    needed = _namespaces_of(objects)
    for key, obj in managed.items():
        if key[:2] == ("", "Namespace") and key[3] in needed and is_owned(obj, run.policy_name):
            wanted.add(key)
    return wanted
