"""File-level restore of a Windows guest against the lab: libguestfs's inspection finds the Windows on an NTFS
system disk (MBR) through its registry, and files named by Windows path (``C:\\Users\\...``) come from the
restore point chosen, through the guest's own drive letters, with no filesystem named.

One lab VM whose one disk is a minimal Windows system disk (labkit.winguest: the hives and files inspection reads,
plus a user's files), backed up with version 1 of a file, changed through the lab's guest write path (ntfscp),
backed up again (guestlab.windows_vm_points). As in test_file_restore.py, the libguestfs appliance starts are the
cost: one session per restore point for the whole module, the operations run in it (ops.file_restore.run_in).
Together with the seeding that is three appliance starts.
"""
import contextlib

import pytest

from labkit.guestfs import APPLIANCE_ACCEL
from guestlab import CAROL_V1, CAROL_V2, WINDOWS_SYSTEM, windows_vm_points

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, GuestError
from ansible_collections.blockvault.vsphere.plugins.module_utils.guest import Drive, GuestSession, GuestSettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.export import exported
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.file_restore import FileRestoreRequest, run_in
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import RestorePointQuery

pytestmark = pytest.mark.lab

# TCG unless BLOCKVAULT_TEST_APPLIANCE_ACCEL says otherwise: a /dev/kvm may exist and still hang the appliance
GUEST = GuestSettings(accel=APPLIANCE_ACCEL)
PLAN = "/Users/carol/Documents/plan.txt"


@pytest.fixture(scope="module")
def points(lab, si, tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        tmp_path = tmp_path_factory.mktemp("winguest")
        for name, value in lab.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
        with windows_vm_points(lab, si, tmp_path, monkeypatch) as made:
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


def run(sessions, version, operation, **options):
    guest, point = sessions[version]
    request = FileRestoreRequest(source=RestorePointQuery("unused-here"), operation=operation, **options)
    return run_in(guest, request, point)


def test_inspection_finds_the_windows_guest_from_its_registry_with_drive_c_on_its_disk(sessions, points):
    found = run(sessions, "v1", "inspect")
    assert found["restore_point"]["id"] == points.v1
    (system,) = found["operating_systems"]
    (ntfs,) = found["filesystems"]
    assert (system["type"], system["distro"]) == ("windows", "windows")
    assert system["product_name"] == WINDOWS_SYSTEM.product_name
    assert system["version"] == "%d.%d" % (WINDOWS_SYSTEM.major, WINDOWS_SYSTEM.minor)
    assert system["hostname"] == WINDOWS_SYSTEM.hostname
    # MountedDevices names C: by the MBR's disk identifier and the partition's offset: libguestfs found that partition
    assert system["drives"] == {"C": ntfs["device"]} and system["root"] == ntfs["device"]
    assert system["mountpoints"] == {"/": ntfs["device"]}
    assert (ntfs["type"], ntfs["label"]) == ("ntfs", WINDOWS_SYSTEM.label)
    assert [ntfs["disk"]] == list(points.disk_keys)


def test_a_windows_path_without_filesystem_is_the_version_of_its_restore_point(sessions, tmp_path):
    for version, expected in (("v1", CAROL_V1), ("v2", CAROL_V2)):
        dest = tmp_path / version
        result = run(sessions, version, "restore", dest=str(dest), paths=["C:\\users\\CAROL\\Documents\\Plan.TXT"])
        assert result["changed"] is True and result["updated"] == ["Plan.TXT"]
        assert result["mounted"].startswith("windows %s" % WINDOWS_SYSTEM.product_name)
        assert (dest / "Plan.TXT").read_bytes() == expected[PLAN]
    # a tree, the path written with / and a lower-case letter
    tree = tmp_path / "tree"
    run(sessions, "v2", "restore", dest=str(tree), paths=["c:/Users/carol"])
    assert (tree / "carol" / "Documents" / "plan.txt").read_bytes() == CAROL_V2[PLAN]
    assert (tree / "carol" / "Desktop" / "todo.txt").read_bytes() == CAROL_V1["/Users/carol/Desktop/todo.txt"]


def test_listing_a_windows_directory_by_its_drive_letter(sessions):
    listed = {e["name"]: e for e in run(sessions, "v1", "list", paths=["C:\\Users\\carol"])["entries"]}
    assert {name: entry["type"] for name, entry in listed.items()} == {
        "Desktop": "directory", "Documents": "directory", "ntuser.ini": "file"}
    assert listed["ntuser.ini"]["path"] == "/Users/carol/ntuser.ini"
    sizes = {}
    for version in ("v1", "v2"):
        entries = run(sessions, version, "list", paths=["C:\\Users\\carol\\Documents"])["entries"]
        sizes[version] = [(e["name"], e["size"]) for e in entries]
    assert sizes == {"v1": [("plan.txt", len(CAROL_V1[PLAN]))], "v2": [("plan.txt", len(CAROL_V2[PLAN]))]}


def test_a_drive_letter_the_guest_does_not_have_or_a_missing_path_is_refused(sessions, tmp_path):
    with pytest.raises(ConfigurationError, match="drive D, which is not a drive of this guest"):
        run(sessions, "v1", "restore", dest=str(tmp_path / "d"), paths=["D:\\Users\\carol\\Documents\\plan.txt"])
    with pytest.raises(GuestError, match=r"C:\\Users\\carol\\Secret\.txt does not exist"):
        run(sessions, "v1", "restore", dest=str(tmp_path / "d"), paths=["C:\\Users\\carol\\Secret.txt"])
    assert not (tmp_path / "d").exists() or list((tmp_path / "d").iterdir()) == []
