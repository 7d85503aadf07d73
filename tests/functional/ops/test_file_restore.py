"""File-level restore against the lab: files of real ext4, NTFS, and XFS, ext3 and Btrfs (on LVM) guest filesystems,
restored as they were at the chosen restore point (not as they are now), inspection, listings, and the refusals.

One lab VM with an ext4 disk, an NTFS disk and an LVM disk, backed up at version 1 and version 2 of some files (guestlab). The
libguestfs appliance starts are the cost, so the module holds one session per restore point and runs the operations
in it (ops.file_restore.run_in); one test goes through the whole module (export, appliance, result).
"""
import contextlib
import os

import pytest

from labkit.guestfs import APPLIANCE_ACCEL
from guestlab import BTRFS_FILES, EXT3_FILES, LINUX_V1, LINUX_V2, WINDOWS_V1, WINDOWS_V2, XFS_FILES, guest_vm_points

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, GuestError
from ansible_collections.blockvault.vsphere.plugins.module_utils.guest import Drive, GuestSession, GuestSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import file_restore as ops_file_restore
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.export import exported
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.file_restore import FileRestoreRequest, run_in
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import RestorePointQuery

pytestmark = pytest.mark.lab

# TCG unless BLOCKVAULT_TEST_APPLIANCE_ACCEL says otherwise: a /dev/kvm may exist and still hang the appliance
GUEST = GuestSettings(accel=APPLIANCE_ACCEL)


@pytest.fixture(scope="module")
def points(lab, si, tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        tmp_path = tmp_path_factory.mktemp("guestfs")
        for name, value in lab.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
        with guest_vm_points(lab, si, tmp_path, monkeypatch) as made:
            yield made


@pytest.fixture(scope="module")
def sessions(points):
    """{"v1": (GuestSession, restore point), "v2": ...}: one appliance per restore point for the whole module."""
    with contextlib.ExitStack() as stack:
        out = {}
        for version, point in (("v1", points.v1), ("v2", points.v2)):
            export = stack.enter_context(exported(RestorePointQuery(point), points.env.endpoints))
            drives = [Drive(key, uri) for key, uri in sorted(export.uris.items())]
            out[version] = (stack.enter_context(GuestSession(drives, GUEST)), export.restore_point)
        yield out


def request(operation, **options):
    return FileRestoreRequest(source=RestorePointQuery("unused-here"), operation=operation, **options)


def run(sessions, version, operation, check=False, **options):
    guest, point = sessions[version]
    return run_in(guest, request(operation, **options), point, check=check)


def test_inspection_finds_the_linux_guest_and_every_filesystem_with_its_disk(sessions, points):
    found = run(sessions, "v1", "inspect")
    assert found["restore_point"]["id"] == points.v1 and found["changed"] is False
    (system,) = found["operating_systems"]
    assert (system["type"], system["distro"], system["hostname"]) == ("linux", "debian", "labguest")
    assert system["mountpoints"] == {"/": system["root"]}
    by_type = {fs["type"]: fs for fs in found["filesystems"]}
    assert set(by_type) == {"ext4", "ntfs", "xfs", "ext3", "btrfs"}
    assert [by_type[kind]["label"] for kind in ("ext4", "ntfs", "xfs", "ext3", "btrfs")] == [
        "labroot", "DATA", "labxfs", "labext3", "labbtrfs"]
    # the two logical volumes are on the third disk, the disk of their volume group's physical volume
    disks = {kind: by_type[kind]["disk"] for kind in by_type}
    assert None not in disks.values() and len({disks["ext4"], disks["ntfs"], disks["xfs"]}) == 3
    assert disks["xfs"] == disks["ext3"] == disks["btrfs"]
    assert by_type["xfs"]["device"] == "/dev/labdata/xfsdata" and by_type["btrfs"]["device"] == "/dev/labdata/home"


def test_listing_shows_the_entries_as_they_were_at_each_restore_point(sessions):
    old = {e["name"]: e for e in run(sessions, "v1", "list", paths=["/etc/app"])["entries"]}
    new = {e["name"]: e for e in run(sessions, "v2", "list", paths=["/etc/app"])["entries"]}
    assert old["app.conf"]["size"] == len(LINUX_V1["/etc/app/app.conf"])
    assert new["app.conf"]["size"] == len(LINUX_V2["/etc/app/app.conf"])
    assert old["app.conf"]["type"] == "file" and old["app.conf"]["path"] == "/etc/app/app.conf"
    etc = {e["name"]: e["type"] for e in run(sessions, "v1", "list", paths=["/etc"])["entries"]}
    assert etc["app"] == "directory" and etc["hostname"] == "file"


def test_ext4_file_restored_from_the_first_point_is_version_1_not_the_current_one(sessions, tmp_path):
    for version, expected in (("v1", LINUX_V1), ("v2", LINUX_V2)):
        dest = tmp_path / version
        result = run(sessions, version, "restore", paths=["/etc/app/app.conf"], dest=str(dest))
        assert result["changed"] is True and result["updated"] == ["app.conf"]
        assert (dest / "app.conf").read_bytes() == expected["/etc/app/app.conf"]


def test_a_tree_restore_keeps_times_and_is_unchanged_when_repeated_check_mode_writes_nothing(sessions, tmp_path):
    dest = tmp_path / "tree"
    planned = run(sessions, "v1", "restore", check=True, paths=["/srv/data", "/etc/hostname"], dest=str(dest))
    assert planned["changed"] is True and "data/report.csv" in planned["updated"] and not dest.exists()
    first = run(sessions, "v1", "restore", paths=["/srv/data", "/etc/hostname"], dest=str(dest))
    assert first["changed"] is True
    assert (dest / "data" / "report.csv").read_bytes() == LINUX_V1["/srv/data/report.csv"]
    assert (dest / "hostname").read_bytes() == b"labguest\n"
    assert int((dest / "hostname").stat().st_mtime) == 1764547200     # the seeded file's time (labkit.guestfs)
    again = run(sessions, "v1", "restore", paths=["/srv/data", "/etc/hostname"], dest=str(dest))
    assert again["changed"] is False and again["updated"] == []
    assert sorted(os.listdir(dest)) == ["data", "hostname"]        # no staging directory left behind
    (dest / "hostname").write_bytes(b"edited on the proxy\n")
    repaired = run(sessions, "v1", "restore", paths=["/etc/hostname"], dest=str(dest))
    assert repaired["updated"] == ["hostname"] and (dest / "hostname").read_bytes() == b"labguest\n"


def test_ntfs_file_by_windows_path_is_the_version_of_its_restore_point(sessions, tmp_path):
    for version, expected in (("v1", WINDOWS_V1), ("v2", WINDOWS_V2)):
        dest = tmp_path / version
        result = run(sessions, version, "restore", filesystem="DATA", dest=str(dest),
                     paths=["C:\\users\\ALICE\\Documents\\Budget.txt"])
        assert result["changed"] is True
        assert (dest / "Budget.txt").read_bytes() == expected["/Users/alice/Documents/budget.txt"]
    listed = run(sessions, "v1", "list", filesystem="DATA", paths=["C:\\Users\\alice"])["entries"]
    assert {e["name"]: e["type"] for e in listed} == {"Documents": "directory", "notes.txt": "file"}


def test_files_on_xfs_ext3_and_btrfs_logical_volumes_by_label_and_by_device(sessions, tmp_path):
    for filesystem, path, expected in (("labxfs", "/pgdata/postgresql.conf", XFS_FILES["/pgdata/postgresql.conf"]),
                                       ("labext3", "/legacy/app.ini", EXT3_FILES["/legacy/app.ini"]),
                                       ("/dev/labdata/home", "/home/bob/.profile", BTRFS_FILES["/home/bob/.profile"])):
        dest = tmp_path / filesystem.strip("/").replace("/", "-")
        result = run(sessions, "v2", "restore", filesystem=filesystem, dest=str(dest), paths=[path])
        assert result["changed"] is True
        assert (dest / path.rsplit("/", 1)[1]).read_bytes() == expected
    listed = run(sessions, "v1", "list", filesystem="labbtrfs", paths=["/home/bob/photos"])["entries"]
    assert [(e["name"], e["size"]) for e in listed] == [("list.txt", len(BTRFS_FILES["/home/bob/photos/list.txt"]))]
    tree = tmp_path / "tree"
    run(sessions, "v1", "restore", filesystem="labxfs", dest=str(tree), paths=["/pgdata"])
    assert (tree / "pgdata" / "base" / "1" / "PG_VERSION").read_bytes() == XFS_FILES["/pgdata/base/1/PG_VERSION"]


def test_a_missing_path_is_named_in_the_error(sessions, tmp_path):
    with pytest.raises(GuestError, match=r"/etc/app/missing\.conf does not exist"):
        run(sessions, "v1", "restore", paths=["/etc/app/missing.conf"], dest=str(tmp_path / "d"))
    with pytest.raises(GuestError, match=r"C:\\Nowhere does not exist"):
        run(sessions, "v1", "list", filesystem="DATA", paths=["C:\\Nowhere"])
    assert not (tmp_path / "d").exists() or os.listdir(tmp_path / "d") == []


def test_an_unknown_filesystem_is_refused_naming_those_there_are(sessions):
    with pytest.raises(ConfigurationError, match="No filesystem 'NOPE'.*labroot.*DATA"):
        run(sessions, "v1", "list", filesystem="NOPE")


def test_hostile_paths_are_refused_before_anything_starts(tmp_path):
    for bad in ("/etc/../../root/.ssh/id_rsa", "..\\..\\Windows", "etc/passwd", "C:..\\x", ""):
        with pytest.raises(ConfigurationError):
            request("restore", paths=[bad], dest=str(tmp_path))
    with pytest.raises(ConfigurationError, match="absolute directory"):
        request("restore", paths=["/etc/hostname"], dest="relative/dir")
    with pytest.raises(ConfigurationError, match="same name"):
        request("restore", paths=["/etc/hostname", "/srv/hostname"], dest=str(tmp_path))


def test_a_link_in_dest_is_not_written_through(sessions, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "app").symlink_to(outside)
    with pytest.raises(GuestError, match="symlink"):
        run(sessions, "v1", "restore", paths=["/etc/app"], dest=str(dest))
    assert os.listdir(outside) == []


def test_the_whole_operation_selects_the_point_before_a_time_exports_and_restores(points, tmp_path):
    env = points.env
    query = RestorePointQuery("latest", points.vm, before=points.v2_created)
    result = ops_file_restore.file_restore(
        FileRestoreRequest(query, "restore", paths=["/etc/app/app.conf"], dest=str(tmp_path / "out"), guest=GUEST),
        env.endpoints, env.run_settings({}))
    assert result["restore_point"]["id"] == points.v1
    assert (tmp_path / "out" / "app.conf").read_bytes() == LINUX_V1["/etc/app/app.conf"]
