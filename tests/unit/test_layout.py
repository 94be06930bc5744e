# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The layout rules of the code (issue 12, "How it will be judged"), read from the source with
`ast`, nothing imported: no file under plugins/ over 500 lines (doc fragments aside), no function
over 60 lines, each module's main() at most 30 lines, a docstring at the top of every
module_utils file and package, no import cycle among the module_utils rooms, and a pure core
that imports nothing from Ansible but in the wrapper rooms named below.

Each failure lists every offender at once with its file, function and size.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGINS = os.path.join(ROOT, "plugins")
MODULE_UTILS = os.path.join(PLUGINS, "module_utils")
MODULES = os.path.join(PLUGINS, "modules")
DOC_FRAGMENTS = os.path.join(PLUGINS, "doc_fragments")

MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60
MAX_MAIN_LINES = 30
OWN_COLLECTION = "ansible_collections.meshguard.egress"
OWN_PACKAGE = OWN_COLLECTION + ".plugins.module_utils"
# Imports from Ansible: ansible itself and any other collection (kubernetes.core's module_utils
# are Ansible code too). Only these module_utils rooms (paths relative to plugins/module_utils)
# may make them: the module wrapper of the cluster modules.
ANSIBLE_PREFIXES = ("ansible", "ansible_collections")
ANSIBLE_ROOMS = ("k8s_module.py",)


def _rel(path):
    return os.path.relpath(path, ROOT)


def _files(top, suffix=""):
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(suffix))
    return found


def _read(path):
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8")


def _tree(path):
    return ast.parse(_read(path), filename=path)


def _functions(tree):
    """(qualified name, lines from `def` to its last line) of every function, nested or not."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                found.append((name, child.end_lineno - child.lineno + 1))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _room(path):
    """A module_utils file as a dotted room name: policy, verify.matrix, verify (its __init__)."""
    rel = os.path.relpath(path, MODULE_UTILS)[:-len(".py")].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _imported_names(tree, room, is_package):
    """Every module name an import statement of the file names (absolute; relative ones are
    resolved against the room's package), with `from X import a` also naming X.a (a may be a
    module)."""
    names = []
    package = (OWN_PACKAGE + "." + room) if is_package else (OWN_PACKAGE + "." + room).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names.append(base)
            names.extend(base + "." + alias.name for alias in node.names)
    return names


def _absolute_modules(tree):
    """The modules the file's absolute imports name (`import X`, `from X import a`: X)."""
    modules = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            modules.append(node.module)
    return modules


def _rooms():
    return dict((_room(p), p) for p in _files(MODULE_UTILS, ".py"))


def _import_graph(rooms):
    graph = {}
    for room, path in rooms.items():
        edges = set()
        is_package = path.endswith("__init__.py")
        for name in _imported_names(_tree(path), room, is_package):
            if name.startswith(OWN_PACKAGE + "."):
                target = name[len(OWN_PACKAGE) + 1:]
                if target in rooms and target != room:
                    edges.add(target)
        graph[room] = sorted(edges)
    return graph


def _cycles(graph):
    """The strongly connected components of more than one room (Tarjan), each as a path
    a -> b -> ... -> a through it."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_path(graph, component) for component in components]


def _cycle_path(graph, component):
    """One cycle through the first room of a strongly connected component (breadth first)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    todo = [start]
    while todo:
        node = todo.pop(0)
        for nxt in graph[node]:
            if nxt == start:
                return paths[node] + [start]
            if nxt in members and nxt not in paths:
                paths[nxt] = paths[node] + [nxt]
                todo.append(nxt)
    return component  # not reached: every component of more than one room has a cycle


def test_no_file_under_plugins_is_over_500_lines():
    too_long = []
    for path in _files(PLUGINS):
        if path.startswith(DOC_FRAGMENTS + os.sep) or "__pycache__" in path:
            continue
        lines = len(_read(path).splitlines())
        if lines > MAX_FILE_LINES:
            too_long.append("%s: %d lines" % (_rel(path), lines))
    assert not too_long, "files over %d lines:\n  %s" % (MAX_FILE_LINES, "\n  ".join(too_long))


def test_no_function_is_over_60_lines():
    too_long = []
    for path in _files(PLUGINS, ".py"):
        for name, lines in _functions(_tree(path)):
            if lines > MAX_FUNCTION_LINES:
                too_long.append("%s: %s() %d lines" % (_rel(path), name, lines))
    assert not too_long, "functions over %d lines:\n  %s" % (MAX_FUNCTION_LINES, "\n  ".join(too_long))


def test_each_module_main_is_at_most_30_lines():
    too_long, missing = [], []
    for path in _files(MODULES, ".py"):
        tree = _tree(path)
        mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
        if not mains:
            missing.append(_rel(path))
        for node in mains:
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_MAIN_LINES:
                too_long.append("%s: main() %d lines" % (_rel(path), lines))
    assert not missing, "modules without a main():\n  %s" % "\n  ".join(missing)
    assert not too_long, "module main() over %d lines:\n  %s" % (MAX_MAIN_LINES, "\n  ".join(too_long))


def test_each_module_utils_file_and_package_begins_with_a_docstring():
    without, no_init = [], []
    for path in _files(MODULE_UTILS, ".py"):
        if not (ast.get_docstring(_tree(path)) or "").strip():
            without.append(_rel(path))
    for dirpath, dirnames, filenames in os.walk(MODULE_UTILS):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        if dirpath != MODULE_UTILS and any(f.endswith(".py") for f in filenames) and "__init__.py" not in filenames:
            no_init.append(_rel(dirpath))
    assert not without, "module_utils files without a docstring at the top:\n  %s" % "\n  ".join(without)
    assert not no_init, "module_utils packages without an __init__.py:\n  %s" % "\n  ".join(no_init)


def test_no_import_cycle_among_module_utils_rooms():
    cycles = _cycles(_import_graph(_rooms()))
    assert not cycles, "import cycles among plugins/module_utils rooms:\n  %s" % "\n  ".join(
        " -> ".join(cycle) for cycle in cycles)


def test_the_core_imports_nothing_from_ansible_but_in_the_wrapper_rooms():
    offenders = []
    for room, path in sorted(_rooms().items()):
        if os.path.relpath(path, MODULE_UTILS) in ANSIBLE_ROOMS:
            continue
        foreign = sorted(set(n for n in _absolute_modules(_tree(path)) if n.split(".")[0] in ANSIBLE_PREFIXES
                             and not (n + ".").startswith(OWN_COLLECTION + ".")
                             and not (OWN_COLLECTION + ".").startswith(n + ".")))
        if foreign:
            offenders.append("%s: %s" % (_rel(path), ", ".join(foreign)))
    assert not offenders, "module_utils rooms importing from Ansible (allowed only in %s):\n  %s" % (
        ", ".join(ANSIBLE_ROOMS), "\n  ".join(offenders))


# --- the checks themselves, on small made-up sources ---------------------------------------------

def test_function_sizes_count_from_def_to_the_last_line_nested_and_methods_too():
    tree = ast.parse("def a():\n    x = 1\n\n    def inner():\n        return 2\n    return x\n\n\n"
                     "class K:\n    def m(self):\n        pass\n")
    assert _functions(tree) == [("a", 6), ("a.inner", 2), ("K.m", 2)]


def test_cycles_are_found_and_named_as_a_path():
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": ["b"], "b": [], "c": ["a", "b"]}) == []


def test_imports_name_rooms_absolute_and_relative():
    tree = ast.parse("from ansible_collections.meshguard.egress.plugins.module_utils.verify import matrix\n"
                     "from . import report\nfrom ..policy import Rule\nimport ansible.module_utils.basic\n")
    names = _imported_names(tree, "verify.options", False)
    assert OWN_PACKAGE + ".verify.matrix" in names
    assert OWN_PACKAGE + ".verify.report" in names
    assert OWN_PACKAGE + ".policy" in names
    assert "ansible.module_utils.basic" in names
    assert _absolute_modules(tree) == [OWN_PACKAGE + ".verify", "ansible.module_utils.basic"]
