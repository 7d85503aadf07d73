"""Helpers for tests against the lab: pyvmomi shortcuts and independent re-implementations of the lab's data
(guest-write bytes, allocated extents) so tests can compute exact expected values."""
import fcntl
import hashlib
import os
import struct
import time

COW_BLOCK = 65536


def sha256_file(path):
    """SHA-256 of a whole file (a restored image, a flat file): the lab's own checksum, never the product's."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_pattern(seed, offset, length):
    """The bytes `labctl write --seed SEED --offset OFFSET --length LENGTH` writes (SHA-256 counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(b"labwrite" + struct.pack("<QQQ", seed, offset, counter)).digest()
        counter += 1
    return bytes(out[:length])


def read_flat(path):
    """The whole flat file, read under LOCK_SH as PROTOCOL.md requires."""
    with open(path, "rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        return handle.read()


def allocated_extents(path, limit=None):
    """Merged [(start, length)] of the file's data (SEEK_DATA/SEEK_HOLE), clipped to limit."""
    out = []
    with open(path, "rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        size = os.fstat(handle.fileno()).st_size if limit is None else limit
        pos = 0
        while pos < size:
            try:
                start = os.lseek(handle.fileno(), pos, os.SEEK_DATA)
            except OSError:
                break
            if start >= size:
                break
            end = min(os.lseek(handle.fileno(), start, os.SEEK_HOLE), size)
            out.append((start, end - start))
            pos = end
    return merge(out)


def merge(extents):
    """Sort and merge overlapping and adjacent (start, length) extents."""
    out = []
    for start, length in sorted(extents):
        if length <= 0:
            continue
        if out and start <= out[-1][0] + out[-1][1]:
            last_start, last_length = out[-1]
            out[-1] = (last_start, max(last_start + last_length, start + length) - last_start)
        else:
            out.append((start, length))
    return out


def wait_task(task, timeout=60):
    """Wait for a vim.Task; return its result or raise its fault."""
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel
    deadline = time.monotonic() + timeout
    while task.info.state not in (vim.TaskInfo.State.success, vim.TaskInfo.State.error):
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task} still {task.info.state} after {timeout} s")
        time.sleep(0.02)
    if task.info.state == vim.TaskInfo.State.error:
        raise task.info.error
    return task.info.result


def find_vm(si, name):
    vm = si.content.searchIndex.FindByInventoryPath(f"DC0/vm/{name}")
    if vm is None:
        raise LookupError(f"VM {name} not found")
    return vm


def disks_of(obj):
    """VirtualDisk devices of a VM or a snapshot, in device order."""
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel
    return [d for d in obj.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]


def snapshot(vm, name):
    return wait_task(vm.CreateSnapshot_Task(name=name, description="lab test", memory=False, quiesce=False))


def remove_snapshot(snap):
    wait_task(snap.RemoveSnapshot_Task(removeChildren=False))


def set_cbt(vm, enabled):
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel
    wait_task(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(changeTrackingEnabled=enabled)))


def changed_areas(vm, snap, device_key, change_id, start=0):
    """Page through QueryChangedDiskAreas from start to the capacity; returns ([(start, length)], pages)."""
    capacity = next(d for d in disks_of(snap or vm) if d.key == device_key).capacityInBytes
    areas, pages = [], 0
    while start < capacity:
        info = vm.QueryChangedDiskAreas(snapshot=snap, deviceKey=device_key, startOffset=start, changeId=change_id)
        pages += 1
        if info.startOffset != start or info.length <= 0:
            raise AssertionError(f"bad DiskChangeInfo at {start}: startOffset={info.startOffset} length={info.length}")
        areas += [(a.start, a.length) for a in info.changedArea]
        start = info.startOffset + info.length
    return areas, pages
