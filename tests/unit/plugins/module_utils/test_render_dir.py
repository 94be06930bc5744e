# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""render_dir: the render_files module's work on a real temporary directory."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.meshguard.egress.plugins.module_utils.render_dir import MARKER_TEXT, RenderDirError, \
    render_dir

MARKER = ".meshguard-egress-render"


def _tree(root):
    found = {}
    for base, dummy, names in os.walk(root):
        for name in names:
            path = os.path.join(base, name)
            with open(path) as handle:
                found[os.path.relpath(path, root)] = handle.read()
    return found


def test_writes_marks_prunes_and_reruns_unchanged(tmp_path):
    dest = str(tmp_path / "out")
    first = render_dir(dest, {"rules/a.yaml": "a\n", "rules/b.yaml": "b\n", "top.yaml": "t\n"}, MARKER, "0640")
    assert first["changed"] and first["written"] == ["rules/a.yaml", "rules/b.yaml", "top.yaml"]
    assert _tree(dest) == {MARKER: MARKER_TEXT, "rules/a.yaml": "a\n", "rules/b.yaml": "b\n", "top.yaml": "t\n"}
    assert stat.S_IMODE(os.stat(os.path.join(dest, "top.yaml")).st_mode) == 0o640

    again = render_dir(dest, {"rules/a.yaml": "a\n", "rules/b.yaml": "b\n", "top.yaml": "t\n"}, MARKER, "0640")
    assert not again["changed"] and again["unchanged"] == 3 and again["written"] == [] == again["removed"]

    pruned = render_dir(dest, {"top.yaml": "t2\n"}, MARKER, "0644", diff=True)
    assert pruned["written"] == ["top.yaml"] and pruned["removed"] == ["rules/a.yaml", "rules/b.yaml"]
    assert _tree(dest) == {MARKER: MARKER_TEXT, "top.yaml": "t2\n"}
    assert not os.path.exists(os.path.join(dest, "rules"))  # the emptied directory is gone too
    assert [d["after_header"] for d in pruned["diff"]] == ["top.yaml", "(removed)", "(removed)"]


def test_check_mode_writes_nothing(tmp_path):
    dest = str(tmp_path / "out")
    result = render_dir(dest, {"a.yaml": "a\n"}, MARKER, "0644", check_mode=True)
    assert result["changed"] and result["written"] == ["a.yaml"]
    assert not os.path.exists(dest)


@pytest.mark.parametrize("files, mode, message", [
    ({"../x.yaml": "x"}, "0644", "'../x.yaml' is not a relative path inside dest"),
    ({"/etc/x.yaml": "x"}, "0644", "'/etc/x.yaml' is not a relative path inside dest"),
    ({MARKER: "x"}, "0644", "is not a relative path inside dest"),
    ({"a.yaml": 1}, "0644", "'a.yaml' is not a relative path inside dest with text content"),
    ({"a.yaml": "a"}, "rw", "mode 'rw' is not an octal permission"),
])
def test_bad_requests_write_nothing(tmp_path, files, mode, message):
    dest = str(tmp_path / "out")
    with pytest.raises(RenderDirError, match=message.replace(".", r"\.").replace("(", r"\(")):
        render_dir(dest, files, MARKER, mode)
    assert not os.path.exists(dest)


def test_refuses_a_foreign_directory_and_a_file(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(RenderDirError, match="is not empty and has no .meshguard-egress-render marker"):
        render_dir(str(foreign), {"a.yaml": "a"}, MARKER, "0644")
    assert _tree(str(foreign)) == {"keep.txt": "mine"}
    plain = tmp_path / "file"
    plain.write_text("x")
    with pytest.raises(RenderDirError, match="exists and is not a directory"):
        render_dir(str(plain), {"a.yaml": "a"}, MARKER, "0644")
