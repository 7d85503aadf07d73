"""Finding and loading libvixDiskLib: search order, errors, missing bundled dependencies, optional symbols.

Uses temporary directories: empty files for the search order and not-found cases, tiny shared objects compiled
here for the load cases, and the lab stand-in (built into a temporary directory) for the prototype declarations.
No InitEx is called here.
"""
import os
import pathlib
import shutil
import subprocess

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, VddkLoadError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk import library

ROOT = pathlib.Path(__file__).resolve().parents[5]
BUILD_SH = ROOT / "tests" / "lab" / "vddk" / "build.sh"


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    out = tmp_path_factory.mktemp("standin")
    subprocess.run([str(BUILD_SH), str(out)], check=True, capture_output=True)
    return out


def test_candidate_order(tmp_path):
    d = str(tmp_path)
    assert library.candidate_paths(d) == [
        f"{d}/lib64/libvixDiskLib.so.9", f"{d}/lib64/libvixDiskLib.so.8", f"{d}/lib64/libvixDiskLib.so.7",
        f"{d}/lib64/libvixDiskLib.so.6", f"{d}/libvixDiskLib.so.9", f"{d}/libvixDiskLib.so.8",
        f"{d}/libvixDiskLib.so.7", f"{d}/libvixDiskLib.so.6"]


def test_lib64_before_top_level_and_newest_first(tmp_path):
    touch(tmp_path / "libvixDiskLib.so.9")
    touch(tmp_path / "lib64" / "libvixDiskLib.so.6")
    touch(tmp_path / "lib64" / "libvixDiskLib.so.7")
    assert library.find_library(str(tmp_path)) == str(tmp_path / "lib64" / "libvixDiskLib.so.7")
    (tmp_path / "lib64" / "libvixDiskLib.so.7").unlink()
    (tmp_path / "lib64" / "libvixDiskLib.so.6").unlink()
    assert library.find_library(str(tmp_path)) == str(tmp_path / "libvixDiskLib.so.9")


def test_unversioned_name_is_not_enough(tmp_path):
    touch(tmp_path / "lib64" / "libvixDiskLib.so")
    with pytest.raises(VddkLoadError) as info:
        library.find_library(str(tmp_path))
    text = str(info.value)
    assert text.startswith("No VDDK library in %s: tried %s/lib64/libvixDiskLib.so.9, " % (tmp_path, tmp_path))
    assert ", ".join(library.candidate_paths(str(tmp_path))) + "." in text
    assert "Pass the directory of an extracted VDDK" in text
    assert isinstance(info.value, ConfigurationError)


def test_missing_directory(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(VddkLoadError) as info:
        library.find_library(str(missing))
    assert str(info.value).startswith("The VDDK directory %r does not exist or is not a directory." % str(missing))
    assert "Extract VMware's VDDK tarball" in str(info.value)


def test_not_a_library(tmp_path):
    touch(tmp_path / "lib64" / "libvixDiskLib.so.8").write_bytes(b"not an ELF file")
    with pytest.raises(VddkLoadError) as info:
        library.load_library(str(tmp_path))
    assert str(info.value).startswith("Cannot load %s/lib64/libvixDiskLib.so.8: " % tmp_path)
    assert "a library it needs is missing" not in str(info.value)


def compile_so(source, output, *args):
    src = output.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(output), str(src), *args], check=True, capture_output=True)
    src.unlink()


@pytest.fixture
def vddk_with_dependency(tmp_path):
    """A fake libvixDiskLib.so.8 that needs libbvbundled.so.1, as VDDK needs its bundled libraries."""
    build = tmp_path / "build"
    build.mkdir()
    compile_so("int bundled_answer(void) { return 42; }\n", build / "libbvbundled.so.1", "-Wl,-soname,libbvbundled.so.1")
    lib64 = tmp_path / "vddk" / "lib64"
    lib64.mkdir(parents=True)
    compile_so("int bundled_answer(void);\nint VixDiskLib_Answer(void) { return bundled_answer(); }\n",
               lib64 / "libvixDiskLib.so.8", "-L%s" % build, "-l:libbvbundled.so.1")
    return tmp_path / "vddk", build / "libbvbundled.so.1"


def test_bundled_dependency_missing(vddk_with_dependency):
    libdir = vddk_with_dependency[0]
    with pytest.raises(VddkLoadError) as info:
        library.load_library(str(libdir))
    text = str(info.value)
    assert text.startswith("Cannot load %s/lib64/libvixDiskLib.so.8: a library it needs is missing (" % libdir)
    assert "libbvbundled.so.1" in text
    assert "VDDK bundles its own libraries in %s/lib64" % libdir in text


def test_bundled_dependency_preloaded_from_the_same_directory(vddk_with_dependency):
    libdir, bundled = vddk_with_dependency
    shutil.copy(bundled, libdir / "lib64" / "libbvbundled.so.1")
    cdll, path = library.load_library(str(libdir))
    assert path == str(libdir / "lib64" / "libvixDiskLib.so.8")
    assert cdll.VixDiskLib_Answer() == 42


def test_chain_of_bundled_dependencies(tmp_path):
    """libvixDiskLib -> libbvfirst -> libbvsecond, both bundled in lib64/: preloaded in dependency order."""
    build = tmp_path / "build"
    lib64 = tmp_path / "vddk" / "lib64"
    build.mkdir()
    lib64.mkdir(parents=True)
    compile_so("int second(void) { return 2; }\n", build / "libbvsecond.so.1", "-Wl,-soname,libbvsecond.so.1")
    compile_so("int second(void);\nint first(void) { return 10 * second(); }\n", build / "libbvfirst.so.1",
               "-Wl,-soname,libbvfirst.so.1", "-L%s" % build, "-l:libbvsecond.so.1")
    compile_so("int first(void);\nint VixDiskLib_Answer(void) { return first() + 1; }\n", lib64 / "libvixDiskLib.so.8",
               "-L%s" % build, "-l:libbvfirst.so.1")
    shutil.copy(build / "libbvfirst.so.1", lib64)
    with pytest.raises(VddkLoadError) as info:
        library.load_library(str(tmp_path / "vddk"))
    assert "a library it needs is missing (libbvsecond.so.1: cannot open shared object file" in str(info.value)
    shutil.copy(build / "libbvsecond.so.1", lib64)
    cdll = library.load_library(str(tmp_path / "vddk"))[0]
    assert cdll.VixDiskLib_Answer() == 21


def test_required_missing_symbols_are_named(vddk_with_dependency):
    libdir, bundled = vddk_with_dependency
    shutil.copy(bundled, libdir / "lib64" / "libbvbundled.so.1")
    cdll, path = library.load_library(str(libdir))
    with pytest.raises(VddkLoadError) as info:
        library._declare(cdll, path)
    assert "lacks required VDDK functions: VixDiskLib_InitEx, VixDiskLib_Exit," in str(info.value)


def test_standin_declares_all_and_optional(standin):
    cdll, path = library.load_library(str(standin / "vddk"))
    assert path == str(standin / "vddk" / "lib64" / "libvixDiskLib.so.8")
    assert library._declare(cdll, path) == set(library._OPTIONAL)
    assert cdll.VixDiskLib_Read.argtypes[1:3] == [library.S.SectorType, library.S.SectorType]
    assert cdll.VixDiskLib_ConnectEx.restype is library.S.VixError


def test_noqab_variant_lacks_only_query_allocated(standin):
    cdll, path = library.load_library(str(standin / "vddk-noqab"))
    optional = library._declare(cdll, path)
    assert set(library._OPTIONAL) - optional == {"VixDiskLib_QueryAllocatedBlocks", "VixDiskLib_FreeBlockList"}


def test_standin_layout(standin):
    lib64 = standin / "vddk" / "lib64"
    assert os.readlink(lib64 / "libvixDiskLib.so") == "libvixDiskLib.so.8"
    soname = subprocess.run(["readelf", "-d", str(lib64 / "libvixDiskLib.so.8")], capture_output=True, text=True,
                            check=True).stdout
    assert "Library soname: [libvixDiskLib.so.8]" in soname


def test_a_library_without_list_transport_modes_loads(tmp_path):
    """nbdkit's test library has every required function but not ListTransportModes: only informational, optional."""
    lib64 = tmp_path / "vddk" / "lib64"
    lib64.mkdir(parents=True)
    names = [name for name in library._REQUIRED if name != "VixDiskLib_ListTransportModes"]
    compile_so("".join("int %s(void) { return 0; }\n" % name for name in names), lib64 / "libvixDiskLib.so.8")
    cdll, path = library.load_library(str(tmp_path / "vddk"))
    optional = library._declare(cdll, path)
    assert "VixDiskLib_ListTransportModes" not in optional
    assert library.VddkLibrary(cdll, path, str(tmp_path / "vddk"), optional).transport_modes() is None
