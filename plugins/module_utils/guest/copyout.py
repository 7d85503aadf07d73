# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copy guest files and trees out to a directory on the proxy: staged, compared, then put in place.

``copy_out(session, request)``: each guest path lands under ``dest`` by its last name (``/etc/app`` ->
``dest/app``). Everything is first extracted into a staging directory (inside ``dest``, so the final step is a
rename on one filesystem), then compared with what ``dest`` holds: identical content (and, when kept, identical
mode, times and owners) means nothing changes (changed=false, the staging is removed). Otherwise the staged
entries replace the destination's one by one, never following a symlink in ``dest`` (a link there is replaced,
not written through), so nothing lands outside ``dest`` whatever the restore point contains.

Trees come out of the appliance as tar and are extracted with a member filter: absolute names and ``..`` are
refused (tarfile's tar filter: also drops setuid/setgid bits and group/other write), hard links must stay inside,
device files, FIFOs and sockets are skipped (named in the result). Check mode stages in a temporary directory
outside ``dest`` and reports what would change without touching ``dest``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import filecmp
import os
import shutil
import stat
import tarfile
import tempfile
import time

from ..errors import ConfigurationError, GuestError
from .paths import local_name

__all__ = ["CopyRequest", "copy_out"]


@dataclasses.dataclass(frozen=True)
class CopyRequest:
    """Copy the GuestPaths ``paths`` into the proxy directory ``dest`` (absolute; made when missing). ``keep_owner``:
    numeric uid/gid as in the guest (effective as root only); ``keep_times``: modification times as in the guest
    (else the time of the restore); ``check``: report what would change, change nothing."""

    paths: tuple
    dest: str
    keep_owner: bool = False
    keep_times: bool = True
    check: bool = False

    def __post_init__(self):
        if not self.paths:
            raise ConfigurationError("Which files? Give paths (guest paths to restore).")
        if not self.dest or not os.path.isabs(self.dest):
            raise ConfigurationError("dest %r: give an absolute directory on the proxy." % (self.dest,))
        names = [local_name(path) for path in self.paths]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ConfigurationError("Several paths end in the same name (%s): they would overwrite each other under "
                                     "dest; restore them in separate runs or to different dest." % ", ".join(twice))


def _member_filter(keep_owner, skipped):
    def apply(member, dest):
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            skipped.append(member.name)
            return None
        member = tarfile.tar_filter(member, dest)
        if member.islnk():
            target = os.path.realpath(os.path.join(dest, member.linkname))
            if os.path.commonpath([target, os.path.realpath(dest)]) != os.path.realpath(dest):
                raise GuestError("The hard link %s in the restore point points outside the restored tree (%s): refused."
                                 % (member.name, member.linkname))
        if not keep_owner:
            member = member.replace(uid=None, gid=None, uname=None, gname=None, deep=False)
        return member
    return apply


def _stage(session, request, staging, skipped):
    """Extract every path under ``staging``; returns the top-level names with their guest paths."""
    placed = []
    for guest_path in request.paths:
        path = session.resolve(guest_path)
        entry = session.stat(path)
        name = local_name(guest_path)
        target = os.path.join(staging, name)
        if entry.type == "directory":
            os.mkdir(target)
            tar = os.path.join(staging, ".tree.tar")
            session.tar_out(path, tar)
            with tarfile.open(tar) as archive:
                archive.extractall(target, filter=_member_filter(request.keep_owner, skipped), numeric_owner=True)
            os.unlink(tar)
            _set_metadata(target, entry, request)
        elif entry.type == "file":
            session.download(path, target)
            _set_metadata(target, entry, request)
        elif entry.type == "link":
            os.symlink(entry.target, target)
        else:
            raise GuestError("%s is a %s, not a file, directory or link: nothing to restore."
                             % (guest_path.text, entry.type))
        placed.append((name, guest_path.text, entry))
    if not request.keep_times:
        now = time.time()
        for root, dirs, files in os.walk(staging):
            for item in dirs + files:
                os.utime(os.path.join(root, item), (now, now), follow_symlinks=False)
    return placed


def _set_metadata(target, entry, request):
    # tar filter semantics for a single file too: no setuid/setgid/sticky, no group/other write
    os.chmod(target, entry.mode & 0o755)
    if request.keep_owner and os.geteuid() == 0:
        os.lchown(target, entry.uid, entry.gid)
    os.utime(target, (entry.mtime, entry.mtime))


def _same(staged, existing, request):
    """Whether the staged entry ``staged`` equals the destination's ``existing`` (not following links)."""
    try:
        old = os.lstat(existing)
    except FileNotFoundError:
        return False
    new = os.lstat(staged)
    if stat.S_IFMT(old.st_mode) != stat.S_IFMT(new.st_mode):
        return False
    if stat.S_ISLNK(new.st_mode):
        return os.readlink(staged) == os.readlink(existing)
    if stat.S_IMODE(old.st_mode) != stat.S_IMODE(new.st_mode):
        return False
    if request.keep_owner and (old.st_uid, old.st_gid) != (new.st_uid, new.st_gid):
        return False
    if stat.S_ISREG(new.st_mode):
        if request.keep_times and int(old.st_mtime) != int(new.st_mtime):
            return False
        return filecmp.cmp(staged, existing, shallow=False)
    return True


def _differences(staging, dest, request):
    """Relative paths of the staged entries that the destination lacks or holds differently."""
    changed = []
    for root, dirs, files in os.walk(staging):
        rel_root = os.path.relpath(root, staging)
        for item in sorted(dirs) + sorted(files):
            rel = os.path.normpath(os.path.join(rel_root, item))
            if not _same(os.path.join(staging, rel), os.path.join(dest, rel), request):
                changed.append(rel)
    return changed


def _safe_dir(dest, rel):
    """Make the directory dest/rel, refusing a symlink or non-directory on the way (never followed)."""
    current = dest
    for part in rel.split(os.sep):
        current = os.path.join(current, part)
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current)
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise GuestError("%s on the proxy is a %s, not a directory: refused to restore into it (nothing is "
                             "written through a link)." % (current, "symlink" if stat.S_ISLNK(info.st_mode) else "file"))


def _commit(staging, dest, changed):
    """Put the changed staged entries in place: directories made, files and links renamed over the old ones."""
    for rel in changed:
        source = os.path.join(staging, rel)
        info = os.lstat(source)
        parent = os.path.dirname(rel)
        if parent:
            _safe_dir(dest, parent)
        target = os.path.join(dest, rel)
        if stat.S_ISDIR(info.st_mode):
            _safe_dir(dest, rel)
            os.chmod(target, stat.S_IMODE(info.st_mode))
            continue
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(os.lstat(target).st_mode):
                raise GuestError("%s on the proxy is a directory; the restore point has a file there: refused to "
                                 "replace a directory." % target)
        os.replace(source, target)
    # directory times last: putting entries in a directory changes its mtime
    for rel in reversed(changed):
        source = os.path.join(staging, rel)
        if os.path.isdir(source) and not os.path.islink(source):
            info = os.lstat(source)
            os.utime(os.path.join(dest, rel), (info.st_atime, info.st_mtime))


def copy_out(session, request):
    """Copy ``request.paths`` out of the mounted guest of ``session`` (a GuestSession) to ``request.dest`` (see the
    module notes). Returns {changed, dest, files: [{path, name, type, size}], updated: [relative paths], skipped}."""
    with contextlib.ExitStack() as stack:
        if request.check:
            staging = stack.enter_context(tempfile.TemporaryDirectory(prefix="blockvault-file-restore-"))
        else:
            try:
                os.makedirs(request.dest, exist_ok=True)
            except OSError as exc:
                raise ConfigurationError("dest %s cannot be made: %s." % (request.dest, exc.strerror)) from exc
            if not os.path.isdir(request.dest) or os.path.islink(request.dest):
                raise ConfigurationError("dest %s is not a directory." % request.dest)
            staging = tempfile.mkdtemp(prefix=".blockvault-file-restore-", dir=request.dest)
            stack.callback(shutil.rmtree, staging, ignore_errors=True)
        skipped = []
        placed = _stage(session, request, staging, skipped)
        changed = _differences(staging, request.dest, request)
        if changed and not request.check:
            _commit(staging, request.dest, changed)
        return {
            "changed": bool(changed),
            "dest": request.dest,
            "files": [{"path": text, "name": name, "type": entry.type, "size": entry.size}
                      for name, text, entry in placed],
            "updated": changed,
            "skipped": skipped,
        }
