# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writes rendered files into a directory the render owns (the render_files module's work).

Pure Python, no Ansible imports. ``render_dir(dest, files, ...)`` checks the request (paths inside
``dest``, a directory that is empty or carries our marker file), works out what changes, and (unless
``check_mode``) replaces changed files atomically and removes the files of an earlier render that are
no longer wanted. Bad requests raise ``RenderDirError`` before anything is written.

Not for: building the file contents (``render.py``) or talking to a cluster.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile

MARKER_TEXT = "Written by meshguard.egress; files here are replaced and pruned on each render.\n"


class RenderDirError(ValueError):
    """The request cannot be carried out; nothing was written."""


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "surrogateescape")
    except (IOError, OSError):
        return None


def _existing_files(dest, marker):
    found = []
    for root, dirs, names in os.walk(dest):
        dirs.sort()
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(root, name), dest)
            if rel != marker:
                found.append(rel)
    return found


def _atomic_write(path, text, mode):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8", "surrogateescape"))
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _checked_request(dest, files, marker, mode):
    """(octal mode, {normalised relative path: text}) or RenderDirError."""
    try:
        mode = int(str(mode), 8)
    except ValueError:
        raise RenderDirError("mode %r is not an octal permission such as '0644'" % (mode,))
    checked = {}
    for rel, text in files.items():
        norm = os.path.normpath(rel)
        if os.path.isabs(rel) or norm.startswith("..") or norm == marker or not isinstance(text, str):
            raise RenderDirError("files: %r is not a relative path inside dest with text content" % (rel,))
        checked[norm] = text
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise RenderDirError("dest %s exists and is not a directory" % dest)
    return mode, checked


def _changes(dest, files, existing):
    """(written, removed, unchanged count, diffs) between the wanted files and the directory."""
    written, diffs, unchanged = [], [], 0
    for rel in sorted(files):
        before = _read(os.path.join(dest, rel))
        if before == files[rel]:
            unchanged += 1
            continue
        written.append(rel)
        diffs.append({"before_header": rel, "after_header": rel, "before": before or "", "after": files[rel]})
    removed = [rel for rel in existing if rel not in files]
    for rel in removed:
        diffs.append({"before_header": rel, "after_header": "(removed)", "before": _read(os.path.join(dest, rel)) or "",
                      "after": ""})
    return written, removed, unchanged, diffs


def _write(dest, marker, mode, files, written, removed, marked):
    if not os.path.isdir(dest):
        os.makedirs(dest)
    if not marked:
        _atomic_write(os.path.join(dest, marker), MARKER_TEXT, mode)
    for rel in written:
        _atomic_write(os.path.join(dest, rel), files[rel], mode)
    for rel in removed:
        os.unlink(os.path.join(dest, rel))
        parent = os.path.dirname(os.path.join(dest, rel))
        while parent != dest and os.path.isdir(parent) and not os.listdir(parent):
            os.rmdir(parent)
            parent = os.path.dirname(parent)


def render_dir(dest, files, marker, mode, check_mode=False, diff=False):
    """Make `dest` hold exactly `files` (relative path -> text). Returns the module result:
    changed, written, removed, unchanged, dest (absolute) and, with `diff`, the diffs."""
    dest = os.path.abspath(dest)
    mode, files = _checked_request(dest, files, marker, mode)
    existing = _existing_files(dest, marker) if os.path.isdir(dest) else []
    marked = os.path.isfile(os.path.join(dest, marker))
    if existing and not marked:
        raise RenderDirError("dest %s is not empty and has no %s marker, so it was not written by a render: "
                             "choose an empty or new directory" % (dest, marker))
    written, removed, unchanged, diffs = _changes(dest, files, existing)
    changed = bool(written or removed or not marked)
    if changed and not check_mode:
        _write(dest, marker, mode, files, written, removed, marked)
    result = dict(changed=changed, written=written, removed=removed, unchanged=unchanged, dest=dest)
    if diff:
        result["diff"] = diffs
    return result
