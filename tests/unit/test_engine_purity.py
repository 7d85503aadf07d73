"""The engine's shape as tests: plain Python under plugins/module_utils, imports one way between its layers, short
parameter lists, and vSphere types kept inside the vsphere layer (docs/architecture.md).

Every file is read with ``ast`` (no import is executed); a failure names the file, the line and the offending
import or function.
"""
import ast
import pathlib


PLUGINS = pathlib.Path(__file__).resolve().parents[2] / "plugins"
MODULE_UTILS = PLUGINS / "module_utils"
MODULES = PLUGINS / "modules"
# how the collection's own Python is named when imported absolutely
COLLECTION_PACKAGE = "ansible_collections.blockvault.vsphere.plugins"

# The one file of module_utils that may import ansible: the adapter the modules share (BlockvaultModule).
ANSIBLE_ADAPTER = "_module"

# What each part of module_utils may import from the collection (a part always may import itself). The lower
# layers know nothing of each other; transfer sees only the bottom modules (the error tree, the block hashing, the
# durability helpers, the lease rule); ops wires them all.
LOWER = {"errors", "blockhash", "fileio", "lease"}
ALLOWED_IMPORTS = {
    "errors": set(),
    "blockhash": {"errors"},
    "fileio": set(),
    "lease": set(),
    "vsphere": LOWER,
    "vddk": LOWER,
    "repo": LOWER,
    "transfer": LOWER,
    # nbdkit's plugin serves what the repository reader reads: the export layer sits on the repository
    "export": LOWER | {"repo"},
    "guest": LOWER,
    "ops": LOWER | {"vsphere", "vddk", "repo", "transfer", "export", "guest"},
    "_module": {"errors", "ops"},
    "__init__": set(),
}
# Modules reach the engine through the adapter and ops only (errors, the bottom layer with no import of its own,
# gives them the typed errors they raise for a bad option); doc fragments are named in DOCUMENTATION, not imported.
MODULE_ALLOWED = {"module_utils._module", "module_utils.ops", "module_utils.errors", "doc_fragments"}

MAX_PARAMETERS = 7


def python_files(root):
    return sorted(path for path in root.rglob("*.py") if "__pycache__" not in path.parts)


def part_of(path):
    """The layer of a file of module_utils: its folder, or its own name for a top-level file (errors, _module)."""
    relative = path.relative_to(MODULE_UTILS)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def parse(path):
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imported_names(path):
    """(line, absolute dotted name) of every import of the file, relative imports resolved, nested ones included.

    Project modules come out relative to plugins/ (``module_utils.ops.info``), everything else as written.
    """
    package = path.relative_to(PLUGINS).with_suffix("").parts[:-1]
    names = []
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            names.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                module = ".".join(base + tuple((node.module or "").split(".") if node.module else ()))
                # "from . import x" imports the submodule x
                names.extend((node.lineno, module + "." + alias.name if not node.module else module)
                             for alias in node.names)
            else:
                names.append((node.lineno, node.module))
    project = COLLECTION_PACKAGE + "."
    return [(line, name[len(project):] if name.startswith(project) else name) for line, name in names]


def relative_name(path):
    return str(path.relative_to(PLUGINS.parent))


def test_the_engine_imports_no_ansible():
    offenders = []
    for path in python_files(MODULE_UTILS):
        if part_of(path) == ANSIBLE_ADAPTER:
            continue
        for line, name in imported_names(path):
            if name.split(".")[0] in ("ansible", "ansible_collections"):
                offenders.append("%s:%d imports %s" % (relative_name(path), line, name))
    assert offenders == []


def test_the_adapter_is_where_ansible_is_imported():
    # the exception above is not for nothing: if the adapter stops importing ansible, drop the exception
    names = [pair[1] for pair in imported_names(MODULE_UTILS / (ANSIBLE_ADAPTER + ".py"))]
    assert any(name.startswith("ansible.module_utils") for name in names)


def test_the_layers_import_one_way():
    offenders = []
    for path in python_files(MODULE_UTILS):
        part = part_of(path)
        allowed = ALLOWED_IMPORTS[part] | {part}
        for line, name in imported_names(path):
            if not name.startswith("module_utils"):
                continue
            target = name.split(".")[1] if "." in name else "__init__"
            if target not in allowed:
                offenders.append("%s:%d (%s) imports %s" % (relative_name(path), line, part, name))
    assert offenders == []


def test_modules_import_only_the_adapter_ops_and_errors():
    offenders = []
    for path in python_files(MODULES):
        for line, name in imported_names(path):
            if name.startswith(("module_utils", "doc_fragments", "modules", "plugin_utils")) and \
                    not any(name == allowed or name.startswith(allowed + ".") for allowed in MODULE_ALLOWED):
                offenders.append("%s:%d imports %s" % (relative_name(path), line, name))
    assert offenders == []


def test_the_import_reader_resolves_relative_imports():
    # the rules above are only as good as this reader: a relative import must come out as the module it names
    names = dict((line, name) for line, name in imported_names(MODULE_UTILS / "ops" / "info.py"))
    assert "module_utils.errors" in names.values()
    assert "module_utils.transfer.progress" in names.values()
    assert "module_utils.ops._engine" in names.values()


def parameters(function):
    """Named parameters of a function, self/cls excluded, keyword-only and positional-only included."""
    args = function.args
    named = [arg.arg for arg in args.posonlyargs + args.args + args.kwonlyargs]
    if named and named[0] in ("self", "cls"):
        named = named[1:]
    return named


def long_parameter_lists():
    offenders = []
    for path in python_files(MODULE_UTILS):
        for node in ast.walk(parse(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                count = len(parameters(node))
                if count > MAX_PARAMETERS:
                    offenders.append("%s:%d %s() takes %d parameters" % (relative_name(path), node.lineno, node.name, count))
    return offenders


def test_no_function_takes_more_than_seven_parameters():
    assert long_parameter_lists() == []


def test_the_parameter_count_excludes_self_and_counts_keyword_only():
    function = ast.parse("def f(self, a, /, b, *rest, c, d=1, **extra): pass").body[0]
    assert parameters(function) == ["a", "b", "c", "d"]


def vsphere_references(path):
    """(line, what) of every pyVmomi import, vim/vmodl type and ``_moId`` access in the file."""
    found = []
    for node in ast.walk(parse(path)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found.extend((node.lineno, "import " + name) for name in modules if name.split(".")[0].lower() == "pyvmomi")
        elif isinstance(node, ast.Attribute):
            if node.attr == "_moId":
                found.append((node.lineno, "._moId"))
            elif isinstance(node.value, ast.Name) and node.value.id in ("vim", "vmodl"):
                found.append((node.lineno, "%s.%s" % (node.value.id, node.attr)))
    return sorted(found)


def vsphere_leaks():
    offenders = []
    for path in python_files(MODULE_UTILS) + python_files(MODULES):
        if path.is_relative_to(MODULE_UTILS / "vsphere"):
            continue
        offenders.extend("%s:%d %s" % (relative_name(path), line, what) for line, what in vsphere_references(path))
    return offenders


def test_no_pyvmomi_outside_the_vsphere_layer():
    assert vsphere_leaks() == []


def test_the_vsphere_reference_finder_sees_what_it_looks_for(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text("from pyVmomi import vim\nspec = vim.vm.ConfigSpec()\nmoref = vm._moId\nvictim.x = 1\n")
    assert vsphere_references(source) == [(1, "import pyVmomi"), (2, "vim.vm"), (3, "._moId")]
