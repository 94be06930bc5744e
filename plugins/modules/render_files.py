#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: render_files
short_description: Write rendered meshguard.egress files to a directory it owns, pruning stale ones
version_added: 0.1.0
description:
  - Writes a set of files (relative path to text, as returned by
    M(meshguard.egress.egress_resources) with O(meshguard.egress.egress_resources#module:render=true))
    into O(dest) in one step, and deletes the files an earlier render wrote that are no longer
    in the set (the files of rules removed from the policy).
  - O(dest) is owned through a marker file. A directory that is neither empty nor marked is
    refused, so a wrong path never loses someone else's files.
  - Files are replaced atomically; unchanged files are not rewritten.
author:
  - meshguard.egress developers (@meshguard)
options:
  dest:
    description: The output directory; created if missing.
    type: path
    required: true
  files:
    description:
      - Relative file path to content. Paths must stay inside O(dest) (no absolute paths, no C(..)).
    type: dict
    required: true
  marker:
    description: Name of the ownership marker file in O(dest).
    type: str
    default: .meshguard-egress-render
  mode:
    description: Permissions of the written files.
    type: raw
    default: "0644"
attributes:
  check_mode:
    support: full
    description: Reports what would be written and removed, and writes nothing.
  diff_mode:
    support: full
    description: Shows the before and after text of every file that changes.
notes:
  - Used by the C(meshguard.egress.render) role.
"""

EXAMPLES = r"""
- name: Build the files for a policy
  meshguard.egress.egress_resources:
    rules:
      - name: baidu
        hosts: [www.baidu.com]
        allow: [bookinfo/bookinfo-productpage]
    render: true
    resources: false
  register: built

- name: Write them
  meshguard.egress.render_files:
    dest: "{{ playbook_dir }}/gitops/egress"
    files: "{{ built.files }}"
"""

RETURN = r"""
written:
  description: Files created or changed, relative to O(dest).
  returned: always
  type: list
  elements: str
  sample: [rules/baidu.yaml]
removed:
  description: Files removed because they are no longer rendered, relative to O(dest).
  returned: always
  type: list
  elements: str
  sample: [rules/github.yaml]
unchanged:
  description: Number of files already up to date.
  returned: always
  type: int
  sample: 4
dest:
  description: The absolute output directory.
  returned: always
  type: str
  sample: /srv/gitops/egress
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text

MARKER_TEXT = "Written by meshguard.egress; files here are replaced and pruned on each render.\n"


def _read(path):
    try:
        with open(path, "rb") as handle:
            return to_text(handle.read(), errors="surrogate_or_strict")
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
            handle.write(to_bytes(text))
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="path", required=True),
            files=dict(type="dict", required=True),
            marker=dict(type="str", default=".meshguard-egress-render"),
            mode=dict(type="raw", default="0644"),
        ),
        supports_check_mode=True,
    )
    dest = os.path.abspath(module.params["dest"])
    marker = module.params["marker"]
    try:
        mode = int(str(module.params["mode"]), 8)
    except ValueError:
        module.fail_json(msg="mode %r is not an octal permission such as '0644'" % (module.params["mode"],))

    files = {}
    for rel, text in module.params["files"].items():
        norm = os.path.normpath(rel)
        if os.path.isabs(rel) or norm.startswith("..") or norm == marker or not isinstance(text, str):
            module.fail_json(msg="files: %r is not a relative path inside dest with text content" % (rel,))
        files[norm] = text

    if os.path.exists(dest) and not os.path.isdir(dest):
        module.fail_json(msg="dest %s exists and is not a directory" % dest)
    existing = _existing_files(dest, marker) if os.path.isdir(dest) else []
    marked = os.path.isfile(os.path.join(dest, marker))
    if existing and not marked:
        module.fail_json(msg="dest %s is not empty and has no %s marker, so it was not written by a render: "
                             "choose an empty or new directory" % (dest, marker))

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
    changed = bool(written or removed or not marked)

    if changed and not module.check_mode:
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

    result = dict(changed=changed, written=written, removed=removed, unchanged=unchanged, dest=dest)
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
