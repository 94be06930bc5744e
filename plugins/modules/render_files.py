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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshguard.egress.plugins.module_utils.render_dir import RenderDirError, render_dir


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
    params = module.params
    try:
        result = render_dir(params["dest"], params["files"], params["marker"], params["mode"],
                            check_mode=module.check_mode, diff=module._diff)
    except RenderDirError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
