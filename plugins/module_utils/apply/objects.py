# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What apply knows about one object: its identity (``object_key``, ``describe``), the hash
of the wanted object (annotation ``APPLIED_HASH_ANNOTATION``), whether a live copy already
is what an apply would leave (``in_sync``: then no request is sent), its diff, and the hosts
a rule object claims.

Not here: reading or writing the cluster (reads.py, runner.py, prune.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import json

from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import split_api_version
from ansible_collections.meshguard.egress.plugins.module_utils.labels import ANNOTATION_HOSTS, APPLIED_HASH_ANNOTATION

try:
    import yaml
    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    HAS_YAML = False

# Server-generated metadata left out of diffs and comparisons.
_VOLATILE_META = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink")


def object_key(obj):
    """(group, kind, namespace, name): the identity of an object, whatever its API version."""
    group = split_api_version(obj.get("apiVersion") or "")[0]
    meta = obj.get("metadata") or {}
    return (group, obj.get("kind"), meta.get("namespace") or "", meta.get("name"))


def describe(key):
    group, kind, namespace, name = key
    return "%s %s" % (kind, "%s/%s" % (namespace, name) if namespace else name)


def object_hash(obj):
    """Stable hash of the wanted object (our own hash annotation excluded)."""
    clean = copy.deepcopy(obj)
    annotations = (clean.get("metadata") or {}).get("annotations")
    if annotations and APPLIED_HASH_ANNOTATION in annotations:
        del annotations[APPLIED_HASH_ANNOTATION]
        if not annotations:
            del clean["metadata"]["annotations"]
    text = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def with_hash(obj):
    body = copy.deepcopy(obj)
    meta = body.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations[APPLIED_HASH_ANNOTATION] = object_hash(obj)
    meta["annotations"] = annotations
    return body


def is_subset(want, have):
    """True when every field of `want` is in `have` with the same value (lists: same length,
    element-wise subset, so a server-defaulted field inside a list item is fine)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and is_subset(v, have[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(
            is_subset(a, b) for a, b in zip(want, have))
    return want == have


def in_sync(want, live):
    """True when `live` is what applying `want` would leave: no request needed."""
    if live is None:
        return False
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    return annotations.get(APPLIED_HASH_ANNOTATION) == object_hash(want) and is_subset(with_hash(want), live)


def clean_for_diff(obj):
    if not obj:
        return None
    clean = copy.deepcopy(obj)
    clean.pop("status", None)
    meta = clean.get("metadata") or {}
    for key in _VOLATILE_META:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    for key in (APPLIED_HASH_ANNOTATION, "kubectl.kubernetes.io/last-applied-configuration"):
        annotations.pop(key, None)
    if "annotations" in meta and not annotations:
        del meta["annotations"]
    return clean


def to_yaml(obj):
    if obj is None:
        return ""
    if HAS_YAML:
        return yaml.safe_dump(obj, default_flow_style=False, sort_keys=True)
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def diff_entry(key, before, after):
    return {"before_header": "%s (cluster)" % describe(key), "after_header": "%s (wanted)" % describe(key),
            "before": to_yaml(clean_for_diff(before)), "after": to_yaml(clean_for_diff(after))}


def hosts_of(obj):
    """Hosts a rule object claims: the hosts annotation, else a ServiceEntry's spec.hosts."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_HOSTS)
    if text:
        text = text.strip()
        if text.startswith("["):
            try:
                return [str(h) for h in json.loads(text)]
            except ValueError:
                pass
        return [h for h in text.replace(",", " ").split() if h]
    if obj.get("kind") == "ServiceEntry":
        return list((obj.get("spec") or {}).get("hosts") or [])
    return []
