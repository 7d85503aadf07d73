# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A restore written onto a block device (a LUN, a local disk): in place, with O_DIRECT, never while it is in use.

Why a target of its own: a device cannot be written as ``PATH.partial`` and renamed (the rename would replace the
device node by a regular file), it has a size of its own (at least the disk's; the bytes past the disk are left as
they were), and nothing about its content is known, so a zero chunk must be written as zeros (BLKZEROOUT, which the
kernel turns into WRITE ZEROES or plain zero writes) instead of being skipped or punched.

``device_in_use`` says why a device must not be written: it (or one of its partitions) is mounted
(/proc/self/mountinfo), or something is stacked on it (holders in sysfs: LVM, dm-crypt, md RAID). The exclusive open
(O_EXCL on a block device, without O_CREAT) is the kernel's own check of the same thing and also covers swap and
file systems that do not show the device's number in mountinfo (btrfs).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat

from ..errors import TransferError
from .direct_io import DirectWriter
from .endpoints import FdTarget, _check_range, _writable_view

__all__ = ["BlockDeviceTarget", "device_size", "device_in_use", "special_file_kind"]

_BLKZEROOUT = 0x127F        # _IO(0x12, 127): zero a byte range [start, start + length) of a block device
_ZEROOUT_ALIGNMENT = 512    # the ioctl wants offsets and lengths in whole 512-byte sectors


def special_file_kind(mode):
    """What an ``st_mode`` that is neither a regular file nor a block device is, in words (None for those two)."""
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISCHR, "character device"), (stat.S_ISFIFO, "named pipe (FIFO)"),
                       (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    if stat.S_ISREG(mode) or stat.S_ISBLK(mode):
        return None
    return "special file"


def device_size(path):
    """The size in bytes of the block device ``path`` (TransferError when it cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise TransferError("Cannot open the block device %s: %s. Check the path and that this user may read it."
                            % (path, exc.strerror or exc)) from exc
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def _read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def _device_numbers(rdev, sys_root):
    """``MAJ:MIN`` of the device and of each of its partitions (from sysfs), the whole device first."""
    own = "%d:%d" % (os.major(rdev), os.minor(rdev))
    numbers = [own]
    base = os.path.join(sys_root, "dev", "block", own)
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return numbers
    for entry in entries:
        if _read_text(os.path.join(base, entry, "partition")) is not None:
            number = (_read_text(os.path.join(base, entry, "dev")) or "").strip()
            if number:
                numbers.append(number)
    return numbers


def device_in_use(path, proc_root="/proc", sys_root="/sys"):
    """Why the block device ``path`` must not be written, in words, or None: it or one of its partitions is mounted
    (``proc_root``/self/mountinfo) or held by a stacked device (``sys_root``/dev/block/MAJ:MIN/holders)."""
    real = os.path.realpath(path)
    numbers = _device_numbers(os.stat(real).st_rdev, sys_root)
    for line in (_read_text(os.path.join(proc_root, "self", "mountinfo")) or "").splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        source = fields[fields.index("-") + 2] if "-" in fields and fields.index("-") + 2 < len(fields) else ""
        if fields[2] in numbers or (source.startswith("/") and os.path.realpath(source) == real):
            what = "its partition %s" % fields[2] if fields[2] in numbers[1:] else "it"
            return "%s is mounted on %s" % (what, fields[4].replace("\\040", " "))
    for number in numbers:
        holders_dir = os.path.join(sys_root, "dev", "block", number, "holders")
        try:
            holders = sorted(os.listdir(holders_dir))
        except OSError:
            continue
        if holders:
            what = "it" if number == numbers[0] else "its partition %s" % number
            return "%s is held by %s (LVM, device-mapper or RAID)" % (what, ", ".join(holders))
    return None


class BlockDeviceTarget(FdTarget):
    """A DiskTarget writing a disk of ``capacity`` bytes onto the first ``capacity`` bytes of the block device ``path``.

    The first handle opens the device exclusively (O_EXCL: the kernel refuses while it is mounted or held, and nobody
    can mount it while the restore runs); ``clone()`` handles share that claim. Aligned writes go through O_DIRECT
    (direct_io.DirectWriter), the rest through the page cache; ``zero`` uses BLKZEROOUT or writes zeros;
    ``known_zeroed`` is False. ``device_size`` is the whole device's size. Thread-safety: one thread per handle.
    """

    known_zeroed = False

    def __init__(self, path, capacity, _clone_of=None):
        self.path = os.fspath(path)
        self.capacity = int(capacity)
        flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | (os.O_EXCL if _clone_of is None else 0)
        try:
            self._fd = os.open(self.path, flags)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise TransferError("The block device %s is in use (mounted, a swap area, or part of an LVM, device-mapper "
                                    "or RAID device): a restore never writes onto a device in use. Unmount or release it "
                                    "first." % self.path) from exc
            raise TransferError("Cannot open the block device %s for writing: %s. Check the path and its permissions."
                                % (self.path, exc.strerror or exc)) from exc
        self.device_size = os.lseek(self._fd, 0, os.SEEK_END) if _clone_of is None else _clone_of.device_size
        if self.device_size < self.capacity:
            os.close(self._fd)
            raise TransferError("The block device %s holds %d bytes, fewer than the %d bytes of the disk to restore."
                                % (self.path, self.device_size, self.capacity))
        try:
            self._direct = DirectWriter.open(self.path)
        except OSError as exc:
            os.close(self._fd)
            raise TransferError("Cannot open the block device %s for writing: %s." % (self.path, exc.strerror or exc)) from exc

    def __repr__(self):
        return "BlockDeviceTarget(%r, capacity=%d)" % (self.path, self.capacity)

    def read_into(self, offset, buffer):
        view = _writable_view(buffer)
        _check_range("A read", offset, view.nbytes, self.capacity)
        done = 0
        while done < view.nbytes:
            got = os.preadv(self._fd, [view[done:]], offset + done)
            if got == 0:
                raise TransferError("The block device %s ended at byte %d while reading." % (self.path, offset + done))
            done += got
        return view.nbytes

    def zero(self, offset, length):
        """Make [offset, offset + length) read as zeros: BLKZEROOUT on the whole sectors, zero writes for the rest."""
        _check_range("Zeroing", offset, length, self.capacity)
        start = -(-offset // _ZEROOUT_ALIGNMENT) * _ZEROOUT_ALIGNMENT
        end = (offset + length) // _ZEROOUT_ALIGNMENT * _ZEROOUT_ALIGNMENT
        if end > start and self._zeroout(start, end - start):
            self._write_zeros(offset, start - offset)
            self._write_zeros(end, offset + length - end)
        else:
            self._write_zeros(offset, length)

    def _zeroout(self, offset, length):
        span = (ctypes.c_uint64 * 2)(offset, length)
        try:
            fcntl.ioctl(self._fd, _BLKZEROOUT, span)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTTY, errno.ENOSYS):
                return False            # not supported here: plain zero writes
            raise
        return True

    def flush(self):
        os.fsync(self._fd)

    def clone(self):
        return BlockDeviceTarget(self.path, self.capacity, _clone_of=self)
