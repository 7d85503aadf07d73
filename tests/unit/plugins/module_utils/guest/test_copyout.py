"""copy_out without an appliance: a stand-in session over a local directory plays the guest.

What is checked: files and trees land under dest by their last name, with the guest's times; a second identical
restore changes nothing; check mode writes nothing; a link in dest is never written through; hostile tar members
(absolute names, '..', hard links leaving the tree, device files) are refused or skipped.
"""
import io
import os
import stat
import tarfile

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, GuestError
from ansible_collections.blockvault.vsphere.plugins.module_utils.guest import CopyRequest, Entry, copy_out, parse_guest_path

MTIME = 1700000000


class LocalGuest:
    """The four GuestSession calls copy_out makes, over the local directory ``root`` (or a prepared tar)."""

    def __init__(self, root, tar_bytes=None):
        self.root = str(root)
        self.tar_bytes = tar_bytes

    def resolve(self, guest_path):
        local = os.path.join(self.root, guest_path.path.lstrip("/"))
        if not os.path.lexists(local):
            raise GuestError("%s does not exist in the restore point." % guest_path.text)
        return guest_path.path

    def stat(self, path):
        info = os.lstat(os.path.join(self.root, path.lstrip("/")))
        kind = "directory" if stat.S_ISDIR(info.st_mode) else "link" if stat.S_ISLNK(info.st_mode) else "file"
        target = os.readlink(os.path.join(self.root, path.lstrip("/"))) if kind == "link" else None
        return Entry(name=os.path.basename(path), path=path, type=kind, size=info.st_size, mtime=int(info.st_mtime),
                     mode=stat.S_IMODE(info.st_mode), uid=info.st_uid, gid=info.st_gid, target=target)

    def download(self, path, local):
        with open(os.path.join(self.root, path.lstrip("/")), "rb") as src, open(local, "wb") as out:
            out.write(src.read())

    def tar_out(self, path, local_tar):
        if self.tar_bytes is not None:
            with open(local_tar, "wb") as out:
                out.write(self.tar_bytes)
            return
        with tarfile.open(local_tar, "w") as archive:
            archive.add(os.path.join(self.root, path.lstrip("/")), arcname=".")


@pytest.fixture
def guest(tmp_path):
    root = tmp_path / "guest"
    (root / "etc" / "app" / "conf.d").mkdir(parents=True)
    (root / "etc" / "app" / "app.conf").write_bytes(b"v1\n")
    (root / "etc" / "app" / "conf.d" / "extra.conf").write_bytes(b"extra\n")
    (root / "etc" / "hostname").write_bytes(b"guest\n")
    (root / "etc" / "link").symlink_to("/etc/hostname")
    for path in ((root / "etc" / "app" / "app.conf"), (root / "etc" / "hostname")):
        os.utime(path, (MTIME, MTIME))
    return LocalGuest(root)


def req(dest, *paths, **options):
    return CopyRequest(paths=tuple(parse_guest_path(p) for p in paths), dest=str(dest), **options)


def test_files_trees_and_links_land_by_name_with_their_times_and_a_repeat_changes_nothing(guest, tmp_path):
    dest = tmp_path / "dest"
    first = copy_out(guest, req(dest, "/etc/app", "/etc/hostname", "/etc/link"))
    assert first["changed"] is True
    assert sorted(first["updated"]) == ["app", "app/app.conf", "app/conf.d", "app/conf.d/extra.conf", "hostname", "link"]
    assert (dest / "app" / "conf.d" / "extra.conf").read_bytes() == b"extra\n"
    assert int((dest / "hostname").stat().st_mtime) == MTIME
    assert os.readlink(dest / "link") == "/etc/hostname"
    again = copy_out(guest, req(dest, "/etc/app", "/etc/hostname", "/etc/link"))
    assert again["changed"] is False and again["updated"] == []
    assert sorted(os.listdir(dest)) == ["app", "hostname", "link"]


def test_check_mode_reports_and_writes_nothing(guest, tmp_path):
    dest = tmp_path / "dest"
    planned = copy_out(guest, req(dest, "/etc/hostname", check=True))
    assert planned["changed"] is True and planned["updated"] == ["hostname"] and not dest.exists()


def test_a_changed_file_is_replaced_and_without_kept_times_gets_the_restore_time(guest, tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "hostname").write_bytes(b"changed\n")
    result = copy_out(guest, req(dest, "/etc/hostname", keep_times=False))
    assert result["updated"] == ["hostname"] and (dest / "hostname").read_bytes() == b"guest\n"
    assert (dest / "hostname").stat().st_mtime > MTIME


def test_a_link_in_dest_is_refused_not_followed(guest, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "app").symlink_to(outside)
    with pytest.raises(GuestError, match="symlink"):
        copy_out(guest, req(dest, "/etc/app"))
    assert os.listdir(outside) == []


def test_a_missing_path_is_named(guest, tmp_path):
    with pytest.raises(GuestError, match="/etc/nothing does not exist"):
        copy_out(guest, req(tmp_path / "dest", "/etc/nothing"))


def _tar(*members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _member(name, kind=tarfile.REGTYPE, data=b"x", linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = linkname
    return info, data if kind == tarfile.REGTYPE else None


@pytest.mark.parametrize("member, error", [
    (_member("../escape"), "outside"),
    (_member("./a/../../escape"), "outside"),
    (_member("hard", tarfile.LNKTYPE, linkname="../../etc/passwd"), "hard link|outside"),
])
def test_hostile_tree_members_are_refused(guest, tmp_path, member, error):
    guest.tar_bytes = _tar(member)
    with pytest.raises(Exception, match=error):
        copy_out(guest, req(tmp_path / "dest", "/etc/app"))
    assert not (tmp_path / "escape").exists()


def test_device_files_are_skipped_and_named(guest, tmp_path):
    guest.tar_bytes = _tar(_member("./ok.txt"), _member("./dev-null", tarfile.CHRTYPE))
    result = copy_out(guest, req(tmp_path / "dest", "/etc/app"))
    assert result["skipped"] == ["./dev-null"] and (tmp_path / "dest" / "app" / "ok.txt").exists()


def test_requests_refuse_a_relative_dest_and_two_paths_of_one_name(tmp_path):
    with pytest.raises(ConfigurationError, match="absolute"):
        req("relative", "/etc/hostname")
    with pytest.raises(ConfigurationError, match="same name"):
        req(tmp_path, "/etc/hostname", "/srv/hostname")
    with pytest.raises(ConfigurationError, match="Which files"):
        CopyRequest(paths=(), dest=str(tmp_path))
