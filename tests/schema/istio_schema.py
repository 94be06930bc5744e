"""Validate Istio objects against Istio's own CRD schemas, the way the API server would.

Source of truth: ``manifests/charts/base/files/crd-all.gen.yaml`` in the ``istio.io/istio`` Go
module at the version pinned as ``ISTIO_MODULE_VERSION`` in ``tests/versions.env``. The module
is located with ``go mod download -json`` (served from the local module cache, or fetched
through the Go module proxy on a fresh machine); the CRD file is read from there and never
copied into this repository.

For every served version of every CRD a JSON-schema validator is built from the version's
``openAPIV3Schema``, made as strict as the API server is under *strict field validation*
(kubectl's default; API clients such as kubernetes.core must ask for it):

* Unknown fields are errors. Every object schema that does not carry
  ``x-kubernetes-preserve-unknown-fields: true`` gets ``additionalProperties: false`` unless it
  declares ``additionalProperties`` itself (a map). In a structural schema an object without
  ``properties`` prunes every field, so it rejects every field here too.
* ``x-kubernetes-int-or-string: true`` accepts an integer or a string.
* ``nullable: true`` additionally accepts ``null``. Without it ``null`` is an error here. (The
  API server silently drops such a null instead of storing it; a generator that emits one has a
  bug either way, so this validator is deliberately stricter.)
* ``oneOf``/``anyOf``/``allOf``/``not`` are kept as value validations. In structural schemas
  these branches may not introduce fields, so unknown-field strictness is not applied inside
  them (it would reject everything), only at the enclosing object.
* ``x-kubernetes-list-type: set`` demands unique items, ``map`` unique values of the
  ``x-kubernetes-list-map-keys`` (e.g. ServiceEntry ``ports[].name``).
* ``format``: int32/int64 ranges, double/float, byte (base64) and date-time are checked.
* ``metadata`` is checked as ObjectMeta basics: only ObjectMeta's fields are allowed, ``name``
  (required; DNS-1123 subdomain) and ``namespace`` (DNS-1123 label) are strings, ``labels`` and
  ``annotations`` are maps of string to string with qualified-name keys, label values are at
  most 63 characters of the allowed alphabet.
* ``apiVersion`` and ``kind`` must be exactly those of the CRD version; nothing else is allowed
  at the top level besides what the CRD declares (``spec``, ``status``).

CEL rules (``x-kubernetes-validations``) cannot be evaluated by jsonschema. The API server
evaluates them with cel-go and the Kubernetes CEL libraries; this module instead carries a
hand-written Python equivalent for each rule text found in the pinned CRDs (``_CEL_RULES``,
about forty distinct rules such as "ports in 1..65535", "hostname cannot be wildcard", "only
one of selector/targetRef/targetRefs", "duration >= 1ms"). A rule text that has no
equivalent here (after a pin bump, or the two ``isURL`` rules of WasmPlugin/TrafficExtension
that need Go's URL parser) is NOT evaluated; ``unimplemented_cel_rules()`` lists such rules per
kind so tests can insist that none concerns the kinds we generate. ``messageExpression``,
``fieldPath`` and transition rules (``oldSelf``) are not used by the pinned CRDs and not
supported.

Things this module does not check, which the lab tier's real API server does: admission
webhooks (istiod's validation webhook), the full ObjectMeta validation (e.g. total annotation
size), defaulting, and any kind that is not an Istio CRD.

Public API: ``validate(obj) -> list[str]`` (empty means valid), ``known_kinds()``,
``unimplemented_cel_rules()``, ``istio_module_version()``, ``crd_file()``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import functools
import json
import os
import re
import subprocess
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
VERSIONS_ENV = REPO / "tests" / "versions.env"
CRD_PATH_IN_MODULE = "manifests/charts/base/files/crd-all.gen.yaml"
ISTIO_MODULE = "istio.io/istio"


class IstioSchemaUnavailable(RuntimeError):
    """The pinned Istio module or its CRD file could not be obtained."""


# --------------------------------------------------------------------------- sources


def _read_versions_env(path: Path = VERSIONS_ENV) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip().strip("'\"")
    return values


def istio_module_version() -> str:
    """The pinned ``istio.io/istio`` module version (tests/versions.env)."""
    try:
        return _read_versions_env()["ISTIO_MODULE_VERSION"]
    except KeyError:
        raise IstioSchemaUnavailable(f"ISTIO_MODULE_VERSION is not set in {VERSIONS_ENV}") from None


@functools.lru_cache(maxsize=None)
def crd_file() -> Path:
    """Path of crd-all.gen.yaml inside the pinned module (downloaded if not cached yet)."""
    version = istio_module_version()
    env = dict(os.environ, GOWORK="off", GOFLAGS="-mod=mod")
    cmd = ["go", "mod", "download", "-json", f"{ISTIO_MODULE}@{version}"]
    try:
        # Outside any Go module, so no go.mod/go.work of the checkout can interfere.
        proc = subprocess.run(
            cmd, cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True, timeout=900, check=False
        )
    except FileNotFoundError:
        raise IstioSchemaUnavailable("the `go` command is needed to locate the Istio CRDs (go mod download)") from None
    info: dict[str, Any] = {}
    try:
        info = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        pass
    if proc.returncode != 0 or info.get("Error") or not info.get("Dir"):
        raise IstioSchemaUnavailable(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {info.get('Error') or proc.stderr.strip()}"
        )
    path = Path(info["Dir"]) / CRD_PATH_IN_MODULE
    if not path.is_file():
        raise IstioSchemaUnavailable(f"{CRD_PATH_IN_MODULE} not found in {info['Dir']} (Istio < 1.24 keeps CRDs elsewhere)")
    return path


@functools.lru_cache(maxsize=None)
def load_crds() -> tuple[dict, ...]:
    """Every CustomResourceDefinition of the pinned Istio release."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster on this 1 MB file
    with crd_file().open(encoding="utf-8") as f:
        docs = [d for d in yaml.load_all(f, Loader=loader) if d]
    crds = tuple(d for d in docs if d.get("kind") == "CustomResourceDefinition")
    if not crds:
        raise IstioSchemaUnavailable(f"no CustomResourceDefinition in {crd_file()}")
    return crds


# --------------------------------------------------------------------------- CEL rules
# Python equivalents of the CEL rule texts that occur in the pinned CRDs. Each takes `self`
# (the value at the node that carries the rule) and returns True when the rule holds. A CEL
# evaluation error (missing key, bad index, failed conversion) rejects the object on the API
# server, so the equivalents return False in those cases.

_GO_DURATION = re.compile(r"^[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$")
_GO_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}


def go_duration_ns(text: str) -> float:
    """Parse a Go/CEL duration string ("1.5s", "1h2m", "100ms", "0") into nanoseconds."""
    if text in ("0", "+0", "-0"):
        return 0.0
    if not isinstance(text, str) or not _GO_DURATION.match(text):
        raise ValueError(f"invalid duration {text!r}")
    sign = -1 if text.startswith("-") else 1
    return sign * sum(float(num) * _UNIT_NS[unit] for num, unit in _GO_DURATION_PART.findall(text))


def _duration_at_least_1ms(s: Any) -> bool:
    try:
        return go_duration_ns(s) >= 1e6
    except ValueError:
        return False


def _has(obj: Any, key: str) -> bool:
    return isinstance(obj, dict) and key in obj


def _get(obj: dict, key: str, default: Any) -> Any:
    return obj[key] if key in obj else default


def _count(obj: dict, *keys: str) -> int:
    return sum(1 for k in keys if _has(obj, k))


def _unix_uds_first_char(s: str) -> bool:
    if not s.startswith("unix://"):
        return True
    return len(s) >= 8 and s[7] in "/@"  # substring(7, 8) out of range is an evaluation error


def _url_scheme_http(s: str) -> bool:
    # Kubernetes' url(): an absolute URI or an absolute path, otherwise an evaluation error.
    try:
        parts = urllib.parse.urlsplit(s)
    except ValueError:
        return False
    if not parts.scheme and not s.startswith("/"):
        return False
    return parts.scheme in ("http", "https")


def _ports_unique(ports: list) -> bool:
    try:
        numbers = [p["number"] for p in ports]
    except (KeyError, TypeError):
        return False
    return all(numbers.count(n) == 1 for n in numbers)


def _int_keys_in_port_range(m: dict) -> bool:
    try:
        return all(0 < int(str(k), 10) <= 65535 for k in m)
    except ValueError:
        return False


def _dns_label_keys(m: Any) -> bool:
    label = re.compile(r"^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$")
    return all(len(k) < 63 and label.search(k) for k in m)


_CEL_RULES: dict[str, Callable[[Any], bool]] = {
    "duration(self) >= duration('1ms')": _duration_at_least_1ms,
    "0 < self && self <= 65535": lambda s: 0 < s <= 65535,
    '!self.contains("*")': lambda s: "*" not in s,
    "self.size() == 0": lambda s: len(s) == 0,
    'self.all(key, !key.contains("*"))': lambda s: all("*" not in k for k in s),
    "self.all(key, key.size() != 0)": lambda s: all(len(k) != 0 for k in s),
    '(has(self.address) ? self.address : "").startsWith("unix://") ? !has(self.ports) : true':
        lambda s: not _get(s, "address", "").startswith("unix://") or not _has(s, "ports"),
    'self.startsWith("unix://") ? (self.substring(7, 8) == "/" || self.substring(7, 8) == "@") : true':
        _unix_uds_first_char,
    'self.startsWith("unix://") ? !self.endsWith("/") : true':
        lambda s: not s.startswith("unix://") or not s.endswith("/"),
    'self.all(key, size(key) < 63 && key.matches("^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$"))': _dns_label_keys,
    "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1":
        lambda s: _count(s, "selector", "targetRef", "targetRefs") <= 1,
    "(has(self.tlsCertificates) ? 1 : 0) + (has(self.credentialNames) ? 1 : 0) <= 1":
        lambda s: _count(s, "tlsCertificates", "credentialNames") <= 1,
    "(has(self.credentialName) ? 1 : 0) + (has(self.credentialNames) ? 1 : 0) <= 1":
        lambda s: _count(s, "credentialName", "credentialNames") <= 1,
    "(has(self.credentialNames) ? 1 : 0) + (has(self.tlsCertificates) ? 1 : 0) <= 1":
        lambda s: _count(s, "credentialNames", "tlsCertificates") <= 1,
    "has(self.address) || has(self.network)": lambda s: _has(s, "address") or _has(s, "network"),
    'url(self).getScheme() in ["http", "https"]': _url_scheme_http,
    "(has(self.workloadSelector) ? 1 : 0) + (has(self.endpoints) ? 1 : 0) <= 1":
        lambda s: _count(s, "workloadSelector", "endpoints") <= 1,
    '!((has(self.addresses) ? self.addresses : []).exists(k, k.contains("/")) && '
    '!((has(self.resolution) ? self.resolution : "NONE") in ["STATIC", "NONE"]))':
        lambda s: not (any("/" in a for a in _get(s, "addresses", [])) and _get(s, "resolution", "NONE") not in ("STATIC", "NONE")),
    '((has(self.resolution) ? self.resolution : "NONE") == "NONE") ? !has(self.endpoints) : true':
        lambda s: _get(s, "resolution", "NONE") != "NONE" or not _has(s, "endpoints"),
    '((has(self.resolution) ? self.resolution : "") == "DNS_ROUND_ROBIN") ? '
    "((has(self.endpoints) ? self.endpoints : []).size() <= 1) : true":
        lambda s: _get(s, "resolution", "") != "DNS_ROUND_ROBIN" or len(_get(s, "endpoints", [])) <= 1,
    'self != "*"': lambda s: s != "*",
    "self.all(l1, self.exists_one(l2, l1.number == l2.number))": _ports_unique,
    'self in ["", "HTTP", "HTTPS"]': lambda s: s in ("", "HTTP", "HTTPS"),
    '(has(self.valueFrom) ? self.valueFrom : "") != "HOST" || !has(self.value)':
        lambda s: _get(s, "valueFrom", "") != "HOST" or not _has(s, "value"),
    "(has(self.serviceAccounts) || has(self.notServiceAccounts)) ? (!has(self.principals) &&\n"
    "!has(self.notPrincipals) && !has(self.namespaces) && !has(self.notNamespaces)) : true":
        lambda s: not (_has(s, "serviceAccounts") or _has(s, "notServiceAccounts"))
        or _count(s, "principals", "notPrincipals", "namespaces", "notNamespaces") == 0,
    "has(self.portLevelMtls) ? (((has(self.selector) && has(self.selector.matchLabels)) ? "
    "self.selector.matchLabels : {}).size() > 0) : true":
        lambda s: not _has(s, "portLevelMtls") or len(_get(_get(s, "selector", {}), "matchLabels", {})) > 0,
    "self.all(key, 0 < int(key) && int(key) <= 65535)": _int_keys_in_port_range,
    "(has(self.jwksUri) ? 1 : 0) + (has(self.jwks_uri) ? 1 : 0) + (has(self.jwks) ? 1 : 0) <= 1":
        lambda s: _count(s, "jwksUri", "jwks_uri", "jwks") <= 1,
    '((has(self.operation) ? self.operation : "") == "UPSERT") ? (self.value != "") : true':
        lambda s: _get(s, "operation", "") != "UPSERT" or (_has(s, "value") and s["value"] != ""),
    '((has(self.operation) ? self.operation : "") == "REMOVE") ? !has(self.value) : true':
        lambda s: _get(s, "operation", "") != "REMOVE" or not _has(s, "value"),
    "(has(self.selector) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1":
        lambda s: _count(s, "selector", "targetRefs") <= 1,
    "has(self.wasm) != has(self.lua)": lambda s: _has(s, "wasm") != _has(s, "lua"),
    "(has(self.workloadSelector) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1":
        lambda s: _count(s, "workloadSelector", "targetRefs") <= 1,
    'has(self.context) ? ((self.context == "WAYPOINT") ? has(self.waypoint) : !has(self.waypoint)) : '
    "!has(self.waypoint)":
        lambda s: (s["context"] == "WAYPOINT") == _has(s, "waypoint") if _has(s, "context") else not _has(s, "waypoint"),
}

# rule text -> set of "apiVersion/kind" whose schema uses it without a Python equivalent
_UNIMPLEMENTED: dict[str, set[str]] = {}


# --------------------------------------------------------------------------- schema conversion

_DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

_OBJECT_META: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": _DNS1123_SUBDOMAIN},
        "generateName": {"type": "string"},
        "namespace": {"type": "string", "maxLength": 63, "pattern": _DNS1123_LABEL},
        "labels": {
            "type": "object",
            "propertyNames": {"format": "k8s-qualified-name"},
            "additionalProperties": {"type": "string", "maxLength": 63, "pattern": _LABEL_VALUE},
        },
        "annotations": {
            "type": "object",
            "propertyNames": {"format": "k8s-qualified-name"},
            "additionalProperties": {"type": "string"},
        },
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "selfLink": {"type": "string"},
        "creationTimestamp": {"type": ["string", "null"]},
        "deletionTimestamp": {"type": ["string", "null"], "format": "date-time"},
        "deletionGracePeriodSeconds": {"type": "integer"},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["apiVersion", "kind", "name", "uid"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "name": {"type": "string"},
                    "uid": {"type": "string"},
                    "controller": {"type": "boolean"},
                    "blockOwnerDeletion": {"type": "boolean"},
                },
            },
        },
        "managedFields": {"type": "array", "items": {"type": "object"}},
    },
}

_EXTENSION_KEYS = {
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-map-type",
}


def _strict(schema: dict, where: str, in_branch: bool = False) -> dict:
    """Turn one structural-schema node into a strict JSON-schema node (see module docstring)."""
    out = {k: v for k, v in schema.items() if k not in _EXTENSION_KEYS and k not in ("description", "default")}

    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])

    if "properties" in schema:
        out["properties"] = {k: _strict(v, where, in_branch) for k, v in schema["properties"].items()}
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict(schema["additionalProperties"], where, in_branch)
    if isinstance(schema.get("items"), dict):
        out["items"] = _strict(schema["items"], where, in_branch)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in out:
            out[key] = [_strict(b, where, True) for b in out[key]]
    if "not" in schema:
        out["not"] = _strict(schema["not"], where, True)

    is_object = schema.get("type") == "object"
    if (
        is_object
        and not in_branch
        and not schema.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in schema
    ):
        out["additionalProperties"] = False

    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        out["uniqueItems"] = True
    elif list_type == "map":
        out["x-list-map-keys"] = list(schema.get("x-kubernetes-list-map-keys") or [])

    rules = schema.get("x-kubernetes-validations")
    if rules:
        out["x-cel"] = [{"rule": r["rule"], "message": r.get("message")} for r in rules]
        for r in rules:
            if r["rule"] not in _CEL_RULES:
                _UNIMPLEMENTED.setdefault(r["rule"], set()).add(where)

    if schema.get("nullable"):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        elif "type" not in out:
            out = {"anyOf": [{"type": "null"}, out]}
    return out


def _cel_keyword(validator, rules, instance, schema) -> Iterator[jsonschema.ValidationError]:
    for rule in rules:
        fn = _CEL_RULES.get(rule["rule"])
        if fn is None:
            continue  # not evaluated; reported by unimplemented_cel_rules()
        try:
            ok = fn(instance)
        except (TypeError, AttributeError, KeyError, ValueError):
            continue  # the value has the wrong shape: the schema errors already say so
        if not ok:
            msg = rule["message"] or f"failed rule: {rule['rule']}"
            yield jsonschema.ValidationError(f"{msg} (CEL rule: {rule['rule']})")


def _list_map_keys_keyword(validator, keys, instance, schema) -> Iterator[jsonschema.ValidationError]:
    if not isinstance(instance, list) or not keys:
        return
    seen = set()
    for item in instance:
        if not isinstance(item, dict):
            continue
        key = tuple(json.dumps(item.get(k), sort_keys=True) for k in keys)
        if key in seen:
            yield jsonschema.ValidationError(
                f"duplicate entry for key [{', '.join(keys)}] = {', '.join(key)} (x-kubernetes-list-type: map)"
            )
        seen.add(key)


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("int32", raises=())
def _int32(value) -> bool:
    return not isinstance(value, int) or isinstance(value, bool) or -(2**31) <= value < 2**31


@_FORMATS.checks("int64", raises=())
def _int64(value) -> bool:
    return not isinstance(value, int) or isinstance(value, bool) or -(2**63) <= value < 2**63


@_FORMATS.checks("byte", raises=(binascii.Error, ValueError))
def _byte(value) -> bool:
    if not isinstance(value, str):
        return True
    base64.b64decode(value, validate=True)
    return True


@_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value) -> bool:
    if not isinstance(value, str):
        return True
    datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return "T" in value or "t" in value


@_FORMATS.checks("k8s-qualified-name", raises=())
def _qualified_name(value) -> bool:
    if not isinstance(value, str):
        return True
    prefix, slash, name = value.rpartition("/")
    if slash:
        if not prefix or len(prefix) > 253 or not re.match(_DNS1123_SUBDOMAIN, prefix):
            return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED_NAME_PART.match(name))


# "double"/"float" need no check beyond type: number.

_Validator = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    {"x-cel": _cel_keyword, "x-list-map-keys": _list_map_keys_keyword},
)


@functools.lru_cache(maxsize=None)
def _validators() -> dict[tuple[str, str], Any]:
    result = {}
    for crd in load_crds():
        spec = crd["spec"]
        group, kind = spec["group"], spec["names"]["kind"]
        for version in spec["versions"]:
            if not version.get("served", False):
                continue
            api_version = f"{group}/{version['name']}"
            source = copy.deepcopy((version.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"})
            root = _strict(source, f"{api_version}/{kind}")
            root["type"] = "object"
            root["additionalProperties"] = False
            root.setdefault("properties", {})
            root["properties"]["apiVersion"] = {"const": api_version}
            root["properties"]["kind"] = {"const": kind}
            root["properties"]["metadata"] = copy.deepcopy(_OBJECT_META)
            root["required"] = sorted({"apiVersion", "kind", "metadata", *root.get("required", [])})
            _Validator.check_schema(root)
            result[(api_version, kind)] = _Validator(root, format_checker=_FORMATS)
    return result


# --------------------------------------------------------------------------- public API


def known_kinds() -> list[tuple[str, str]]:
    """Every (apiVersion, kind) served by the pinned Istio CRDs, sorted."""
    return sorted(_validators())


def unimplemented_cel_rules() -> dict[str, list[str]]:
    """CEL rule texts of the pinned CRDs that this module cannot evaluate -> where they occur."""
    _validators()
    return {rule: sorted(where) for rule, where in sorted(_UNIMPLEMENTED.items())}


def _path(error: jsonschema.ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _flatten(error: jsonschema.ValidationError) -> Iterator[jsonschema.ValidationError]:
    """Report the innermost reasons of anyOf/oneOf failures (e.g. a nullable wrapper)."""
    if error.context and error.validator in ("anyOf", "oneOf"):
        # the null branch of a nullable wrapper adds nothing useful
        useful = [e for e in error.context if not (e.validator == "type" and e.validator_value == "null")]
        if useful and all(e.validator != "required" for e in useful):
            for sub in useful:
                yield from _flatten(sub)
            return
    yield error


def validate(obj: Any) -> list[str]:
    """Validate one object; return readable errors ("<path>: <message>"), empty if valid."""
    if not isinstance(obj, dict):
        return [f"<root>: expected a mapping, got {type(obj).__name__}"]
    key = (obj.get("apiVersion"), obj.get("kind"))
    validator = _validators().get(key)
    if validator is None:
        return [f"<root>: {key[0]} {key[1]} is not a kind served by the Istio CRDs {istio_module_version()}"]
    messages = []
    for error in validator.iter_errors(obj):
        for leaf in _flatten(error):
            messages.append(f"{_path(leaf)}: {leaf.message}")
    return sorted(set(messages))
