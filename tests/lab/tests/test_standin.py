"""The VDDK stand-in driven through the production wrapper against the running lab (in-process).

Covers connecting (password, session cookie) and its exact failures, GetInfo, point-in-time snapshot reads while
the guest writes, allocation against the files' own allocation, restores landing in the disk and its CBT log,
fault injection, statistics and the retry wrapper. Rules and the noqab variant: test_standin_rules.py.
"""
import hashlib
import os
import random
import socket
import struct
import threading
import time

import pytest
from pyVmomi import vim

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import (
    ConfigurationError, VddkError, VddkTransientError)
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk import library, vixerror
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk.connection import ConnectParams, Connection
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk.retry import RetryingDisk, connection_factory

pytestmark = pytest.mark.lab

MIB = 1 << 20
CHUNK = 65536


@pytest.fixture(scope="module")
def vddk(lab):
    return library.initialize(lab.env()["VDDK_LIBDIR"])


@pytest.fixture(scope="module")
def morefs(si):
    index = si.RetrieveContent().searchIndex
    return {name: index.FindByInventoryPath("DC0/vm/" + name) for name in ("lab-vm1", "lab-vm2")}


@pytest.fixture(autouse=True)
def clean_knobs(monkeypatch, request):
    for name in list(os.environ):
        if name.startswith("LABVDDK_"):
            monkeypatch.delenv(name)
    # the Nth-call counters are process-wide: each test starts them again (they restart when the faults change)
    monkeypatch.setenv("LABVDDK_FAIL_RUN", request.node.nodeid)


def connect(lab, vddk, vm, read_only=True, **kwargs):
    info = lab.info
    args = dict(user=info["user"], password=info["password"], port=info["port"])
    args.update(kwargs)
    thumbprint = args.pop("thumbprint", info["thumbprint"])
    return Connection(vddk, ConnectParams(info["host"], vm._moId, thumbprint, **args), read_only=read_only)


def disk_of(lab, vm_name, index):
    return lab.disks(vm_name)[index]


def read_all(disk, step=MIB):
    digest = hashlib.sha256()
    buf = bytearray(step)
    for offset in range(0, disk.capacity, step):
        view = memoryview(buf)[:min(step, disk.capacity - offset)]
        disk.read_into(offset, view)
        digest.update(view)
    return digest.hexdigest()


def file_allocation(path, chunk=CHUNK, size=None):
    """Allocated ranges of a file by SEEK_DATA/SEEK_HOLE, rounded out to whole chunks, merged."""
    ranges = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size if size is None else size
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            if data >= size:
                break
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), size)
            lo, hi = data // chunk * chunk, min(size, -(-hole // chunk) * chunk)
            if ranges and ranges[-1][1] >= lo:
                ranges[-1][1] = max(ranges[-1][1], hi)
            else:
                ranges.append([lo, hi])
            pos = hole
    finally:
        os.close(fd)
    return [(lo, hi - lo) for lo, hi in ranges]


def chunk_has_data(fd, offset, chunk=CHUNK):
    try:
        return os.lseek(fd, offset, os.SEEK_DATA) < offset + chunk
    except OSError:
        return False


def snapshot_allocation(flat, snapshot_moref, capacity):
    """PROTOCOL.md section 2 from the files: per 64 KiB block, data's allocation where map is 1, else F's."""
    snapdir = "%s.snap/%s" % (flat, snapshot_moref)
    with open(snapdir + "/map", "rb") as handle:
        block_map = handle.read()
    fds = {0: os.open(flat, os.O_RDONLY), 1: os.open(snapdir + "/data", os.O_RDONLY)}
    try:
        chunks = [offset for offset in range(0, capacity, CHUNK) if chunk_has_data(fds[block_map[offset // CHUNK]], offset)]
    finally:
        for fd in fds.values():
            os.close(fd)
    ranges = []
    for offset in chunks:
        if ranges and ranges[-1][1] == offset:
            ranges[-1][1] += CHUNK
        else:
            ranges.append([offset, offset + CHUNK])
    return [(lo, hi - lo) for lo, hi in ranges]


def nonzero_chunks(data):
    return {offset for offset in range(0, len(data), CHUNK) if data[offset:offset + CHUNK].count(0) != CHUNK}


def chunks_of(extents):
    return {offset for start, length in extents for offset in range(start, start + length, CHUNK)}


def cbt_records(flat):
    with open(flat + ".cbt", "rb") as handle:
        data = handle.read()
    assert data[:8] == b"LABCBT01"
    return [struct.unpack_from("<QQ", data, pos) for pos in range(32, len(data) - 15, 16)]


class Snapshot:
    """A snapshot made through pyvmomi like the product makes it; removed on exit."""

    def __init__(self, vm, name):
        task = vm.CreateSnapshot_Task(name, "standin test", False, False)
        assert task.info.state == "success", task.info.error
        self.obj = task.info.result
        self.moref = self.obj._moId
        self.disks = [d.backing.fileName for d in self.obj.config.hardware.device
                      if isinstance(d, vim.vm.device.VirtualDisk)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.obj.RemoveSnapshot_Task(removeChildren=False)


# -- connecting ----------------------------------------------------------------------------------------------

def test_connect_with_password_and_get_info(lab, vddk, morefs):
    expected = disk_of(lab, "lab-vm1", 1)
    with connect(lab, vddk, morefs["lab-vm1"]) as conn, conn.open_disk(expected["fileName"]) as disk:
        assert disk.capacity == expected["capacity"] == 16 * MIB
        assert disk.info.capacity == 16 * MIB
        assert disk.info.adapter == "lsilogic"
        assert disk.info.uuid.startswith("60 00 c2 ")
        assert disk.transport_mode == "nbdssl"
        assert read_all(disk) == lab.checksum("lab-vm1", 1)
    assert not conn.connected


def test_connect_with_session_cookie(lab, vddk, morefs, si):
    path = disk_of(lab, "lab-vm2", 0)["fileName"]
    cookie = si._stub.cookie
    with connect(lab, vddk, morefs["lab-vm2"], password=None, session_cookie=cookie, transport_modes="nbd") as conn:
        with conn.open_disk(path) as disk:
            assert disk.transport_mode == "nbd"
            buf = bytearray(4096)
            disk.read_into(0, buf)
            with open(disk_of(lab, "lab-vm2", 0)["flat"], "rb") as flat:
                assert bytes(buf) == flat.read(4096)


def test_invalid_session_cookie(lab, vddk, morefs):
    conn = connect(lab, vddk, morefs["lab-vm2"], password=None, session_cookie="vmware_soap_session=not-a-session")
    with pytest.raises(vixerror.VddkAuthenticationError) as info:
        conn.connect()
    assert info.value.code == 35
    assert "not-a-session" not in str(info.value)


def test_wrong_password(lab, vddk, morefs):
    with pytest.raises(vixerror.VddkAuthenticationError) as info:
        connect(lab, vddk, morefs["lab-vm1"], password="Wrong-Pa55word").connect()
    err = info.value
    assert (err.code, err.function, err.text) == (35, "VixDiskLib_ConnectEx", "Authentication failed")
    assert str(err) == ("VDDK call VixDiskLib_ConnectEx(127.0.0.1:%d, %s) failed with error 35 (Authentication "
                        "failed). Check the vCenter user name and password (or that the session is still valid)."
                        % (lab.info["port"], morefs["lab-vm1"]._moId))


def test_wrong_thumbprint_fails_at_open(lab, vddk, morefs, caplog):
    path = disk_of(lab, "lab-vm1", 0)["fileName"]
    with connect(lab, vddk, morefs["lab-vm1"], thumbprint="AB" * 20) as conn:
        with pytest.raises(VddkError) as info:
            conn.open_disk(path)
    assert info.value.__class__ is VddkError
    assert (info.value.code, info.value.function) == (1, "VixDiskLib_Open")
    assert "thumbprint" in str(info.value)
    assert any("has the SHA-1 thumbprint %s, expected %s" % (lab.info["thumbprint"], ":".join(["AB"] * 20))
               in r.getMessage() for r in caplog.records)


def test_log_callbacks_format_arguments_and_redact(lab, vddk, morefs, caplog):
    caplog.set_level("DEBUG", logger="blockvault.vddk")
    with connect(lab, vddk, morefs["lab-vm1"]):
        pass
    messages = [r.getMessage() for r in caplog.records if r.name == "blockvault.vddk"]
    assert ("VixDiskLib: ConnectEx to 127.0.0.1:%d as %s for %s, snapshot (none), transport modes nbdssl:nbd, "
            "read-only" % (lab.info["port"], lab.info["user"], morefs["lab-vm1"]._moId)) in messages
    assert not any(lab.info["password"] in m for m in messages)


def test_unknown_vm_and_snapshot(lab, vddk, morefs):
    vm = morefs["lab-vm1"]
    with pytest.raises(vixerror.VddkNotFoundError) as info:
        Connection(vddk, ConnectParams(lab.info["host"], "vm-999999", lab.info["thumbprint"], user=lab.info["user"],
                                       password=lab.info["password"], port=lab.info["port"])).connect()
    assert info.value.code == 4000
    with pytest.raises(vixerror.VddkNotFoundError) as info:
        connect(lab, vddk, vm, snapshot_moref="snapshot-999999").connect()
    assert info.value.code == 13003


def test_unusable_transport_mode(lab, vddk, morefs):
    path = disk_of(lab, "lab-vm1", 0)["fileName"]
    with connect(lab, vddk, morefs["lab-vm1"], transport_modes="hotadd") as conn:
        with pytest.raises(vixerror.VddkAccessError) as info:
            conn.open_disk(path)
    assert info.value.code == 13
    assert "transport modes" in str(info.value)


def test_unreachable_host_is_transient(lab, vddk, morefs):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(VddkTransientError) as info:
        connect(lab, vddk, morefs["lab-vm1"], port=port).connect()
    assert info.value.code == 18000


def test_prepare_and_end_access_and_cleanup(lab, vddk, morefs):
    conn = connect(lab, vddk, morefs["lab-vm1"])
    assert conn.prepare_for_access("blockvault backup") is True
    assert conn.end_access("blockvault backup") is True
    assert conn.cleanup() == (0, 0)
    conn.close()
    bad = connect(lab, vddk, morefs["lab-vm1"], password="nope")
    with pytest.raises(vixerror.VddkAuthenticationError):
        bad.prepare_for_access("blockvault backup")


# -- reading -------------------------------------------------------------------------------------------------

def test_bounds_and_alignment(lab, vddk, morefs):
    path = disk_of(lab, "lab-vm2", 0)["fileName"]
    with connect(lab, vddk, morefs["lab-vm2"]) as conn, conn.open_disk(path) as disk:
        with pytest.raises(vixerror.VddkOutOfRangeError) as info:
            disk.read_into(disk.capacity - 512, bytearray(1024))
        assert info.value.code == 16007
        with pytest.raises(ValueError) as info:
            disk.read_into(100, bytearray(512))
        assert str(info.value) == ("VDDK read at offset 100 of 512 bytes is not aligned to 512-byte sectors: offset "
                                   "and length must be multiples of 512.")
        with pytest.raises(ValueError):
            disk.read_into(0, bytearray(700))
        with pytest.raises(ConfigurationError):
            disk.write(0, b"\0" * 512)
        disk.read_only = False        # get past the wrapper: the library itself refuses a read-only handle
        with pytest.raises(vixerror.VddkReadOnlyError) as info:
            disk.write(0, b"\0" * 512)
        assert info.value.code == 11


def test_snapshot_reads_are_point_in_time_while_the_guest_writes(lab, vddk, morefs):
    vm = morefs["lab-vm1"]
    live = disk_of(lab, "lab-vm1", 1)
    before = lab.checksum("lab-vm1", 1)
    allocation_before = file_allocation(live["flat"])
    with open(live["flat"], "rb") as flat:
        content_before = flat.read()
    with Snapshot(vm, "standin-pit") as snap:
        assert snap.disks[1] == live["fileName"]
        with connect(lab, vddk, vm, snapshot_moref=snap.moref) as conn, conn.open_disk(snap.disks[1]) as disk:
            assert disk.capacity == 16 * MIB
            digest = hashlib.sha256()
            buf = bytearray(MIB)
            for number, offset in enumerate(range(0, disk.capacity, MIB)):
                # the guest writes ahead of, behind and across the block read next
                lab.write("lab-vm1", 1, offset=(offset + 3 * MIB + 1000) % disk.capacity, length=300000, seed=number)
                lab.write("lab-vm1", 1, offset=offset + MIB // 2, length=4096, seed=100 + number)
                disk.read_into(offset, buf)
                digest.update(buf)
            assert digest.hexdigest() == before
            assert lab.checksum("lab-vm1", 1, snapshot="standin-pit") == before
            assert lab.checksum("lab-vm1", 1) != before
            extents = disk.allocated_extents(chunk_size=CHUNK)
            assert extents == snapshot_allocation(live["flat"], snap.moref, disk.capacity)
            # never under-reported, never more than F had at the snapshot
            assert nonzero_chunks(content_before) <= chunks_of(extents) <= chunks_of(allocation_before)
        with connect(lab, vddk, vm) as conn, conn.open_disk(live["fileName"]) as disk:
            assert read_all(disk) == lab.checksum("lab-vm1", 1)


def test_allocated_extents_match_the_file(lab, vddk, morefs):
    live = disk_of(lab, "lab-vm1", 0)
    lab.write("lab-vm1", 0, offset=40 * MIB + 5, length=10, seed=3)     # data in one more chunk
    with connect(lab, vddk, morefs["lab-vm1"]) as conn, conn.open_disk(live["fileName"]) as disk:
        expected = file_allocation(live["flat"])
        assert expected and expected != [(0, disk.capacity)]
        assert disk.allocated_extents() == expected
        assert disk.allocated_extents(chunk_size=MIB) == file_allocation(live["flat"], chunk=MIB)
        # a sub-range is clipped to what was asked
        start, length = 40 * MIB - 512, MIB + 1024
        clipped = [(max(o, start), min(o + n, start + length) - max(o, start)) for o, n in expected
                   if o < start + length and o + n > start]
        assert disk.allocated_extents(start, length) == clipped
        assert (40 * MIB, CHUNK) in [(o, CHUNK) for o, n in disk.allocated_extents() if o <= 40 * MIB < o + n]
        with pytest.raises(ValueError):
            disk.allocated_extents(chunk_size=32768)


# -- writing (restore) ---------------------------------------------------------------------------------------

def test_writes_land_in_the_disk_and_the_cbt_log(lab, vddk, morefs):
    target = disk_of(lab, "lab-vm2", 0)
    first = os.urandom(CHUNK)
    second = bytearray(os.urandom(4096))
    third = memoryview(bytearray(os.urandom(8192)))[4096:]
    records_before = len(cbt_records(target["flat"])) if os.path.exists(target["flat"] + ".cbt") else 0
    with connect(lab, vddk, morefs["lab-vm2"], read_only=False) as conn:
        with conn.open_disk(target["fileName"]) as disk:
            assert not disk.read_only
            disk.write(MIB, first)
            disk.write(disk.capacity - 4096, second)
            disk.write(3 * MIB + 512, third)
            disk.flush()
    with open(target["flat"], "rb") as flat:
        flat.seek(MIB)
        assert flat.read(CHUNK) == first
        flat.seek(target["capacity"] - 4096)
        assert flat.read(4096) == bytes(second)
        flat.seek(3 * MIB + 512)
        assert flat.read(4096) == bytes(third)
    records = cbt_records(target["flat"])
    assert len(records) == records_before + 3
    assert records[-3:] == [(MIB, CHUNK), (target["capacity"] - 4096, 4096), (3 * MIB + 512, 4096)]


def test_restore_write_preserves_snapshot_view(lab, vddk, morefs):
    vm = morefs["lab-vm2"]
    target = disk_of(lab, "lab-vm2", 0)
    before = lab.checksum("lab-vm2", 0)
    with Snapshot(vm, "standin-cow") as snap:
        with connect(lab, vddk, vm, read_only=False) as conn, conn.open_disk(target["fileName"]) as disk:
            disk.write(0, os.urandom(3 * CHUNK + 512))
            disk.write(5 * MIB, b"\xa5" * CHUNK)
        assert lab.checksum("lab-vm2", 0) != before
        with connect(lab, vddk, vm, snapshot_moref=snap.moref) as conn, conn.open_disk(snap.disks[0]) as disk:
            assert read_all(disk) == before


# -- fault injection, statistics, retries ----------------------------------------------------------------------

def outcomes(disk, count, write=False):
    result = []
    for number in range(count):
        try:
            if write:
                disk.write(number * 4096, b"\x11" * 4096)
            else:
                disk.read_into(number * 4096, bytearray(4096))
            result.append(0)
        except VddkError as exc:
            result.append(exc.code)
    return result


@pytest.mark.parametrize("knobs, expected", [
    ({"LABVDDK_FAIL_READ_NTH": 3, "LABVDDK_FAIL_CODE": 14011}, [0, 0, 14011, 0, 0, 0]),
    ({"LABVDDK_FAIL_READ_NTH": 2, "LABVDDK_FAIL_READ_TIMES": 3}, [0, 1, 1, 1, 0, 0]),
    ({"LABVDDK_FAIL_READ_NTH": 4, "LABVDDK_FAIL_READ_TIMES": 0, "LABVDDK_FAIL_CODE": 36}, [0, 0, 0, 36, 36, 36]),
    ({"LABVDDK_FAIL_WRITE_NTH": 1}, [0, 0, 0, 0, 0, 0]),
])
def test_injected_read_failures(lab, vddk, morefs, monkeypatch, knobs, expected):
    for name, value in knobs.items():
        monkeypatch.setenv(name, str(value))
    path = disk_of(lab, "lab-vm1", 1)["fileName"]
    with connect(lab, vddk, morefs["lab-vm1"]) as conn, conn.open_disk(path) as disk:
        assert outcomes(disk, 6) == expected


def test_injected_write_failures_from_the_nth_on(lab, vddk, morefs, monkeypatch):
    monkeypatch.setenv("LABVDDK_FAIL_WRITE_NTH", "3")
    monkeypatch.setenv("LABVDDK_FAIL_WRITE_TIMES", "0")
    monkeypatch.setenv("LABVDDK_FAIL_CODE", "30005")
    path = disk_of(lab, "lab-vm2", 0)["fileName"]
    with connect(lab, vddk, morefs["lab-vm2"], read_only=False) as conn, conn.open_disk(path) as disk:
        assert outcomes(disk, 5, write=True) == [0, 0, 30005, 30005, 30005]
        assert outcomes(disk, 2) == [0, 0]                     # reads are counted apart


def test_injected_write_failure_changes_nothing(lab, vddk, morefs, monkeypatch):
    monkeypatch.setenv("LABVDDK_FAIL_WRITE_NTH", "2")
    monkeypatch.setenv("LABVDDK_FAIL_CODE", "5")
    target = disk_of(lab, "lab-vm2", 0)
    records_before = len(cbt_records(target["flat"]))
    with open(target["flat"], "rb") as flat:
        flat.seek(4096)
        old = flat.read(4096)
    with connect(lab, vddk, morefs["lab-vm2"], read_only=False) as conn, conn.open_disk(target["fileName"]) as disk:
        codes = outcomes(disk, 3, write=True)
    assert codes == [0, 5, 0]
    with open(target["flat"], "rb") as flat:
        flat.seek(4096)
        assert flat.read(4096) == old
    assert cbt_records(target["flat"])[records_before:] == [(0, 4096), (8192, 4096)]


@pytest.mark.parametrize("kind", ["READ", "WRITE"])
def test_failure_rate_is_reproducible_with_a_seed(lab, vddk, morefs, monkeypatch, kind):
    monkeypatch.setenv("LABVDDK_FAIL_%s_RATE" % kind, "0.4")
    path = disk_of(lab, "lab-vm2", 0)["fileName"]
    runs = []
    for run, seed in enumerate(("42", "42", "43")):
        monkeypatch.setenv("LABVDDK_FAIL_SEED", seed)
        monkeypatch.setenv("LABVDDK_FAIL_RUN", "seeded-%d" % run)      # the same faults, counted from the start
        with connect(lab, vddk, morefs["lab-vm2"], read_only=False) as conn, conn.open_disk(path) as disk:
            runs.append(outcomes(disk, 40, write=kind == "WRITE"))
    assert runs[0] == runs[1]
    assert 0 < runs[0].count(1) < 40
    assert set(runs[0]) == {0, 1}
    assert runs[2] != runs[0]


def test_latency_is_added_to_each_io(lab, vddk, morefs, monkeypatch):
    monkeypatch.setenv("LABVDDK_LATENCY_US", "150000")
    path = disk_of(lab, "lab-vm1", 1)["fileName"]
    with connect(lab, vddk, morefs["lab-vm1"]) as conn, conn.open_disk(path) as disk:
        started = time.monotonic()
        disk.read_into(0, bytearray(512))
        disk.read_into(512, bytearray(512))
        assert time.monotonic() - started >= 0.3      # a lower bound the sleeps guarantee


def test_stats_counters_are_exact(lab, vddk, morefs, monkeypatch, tmp_path):
    stats = tmp_path / "stats"
    monkeypatch.setenv("LABVDDK_STATS", str(stats))
    monkeypatch.setenv("LABVDDK_FAIL_READ_NTH", "4")
    target = disk_of(lab, "lab-vm2", 0)
    with connect(lab, vddk, morefs["lab-vm2"], read_only=False) as conn, conn.open_disk(target["fileName"]) as disk:
        for number in range(3):
            disk.read_into(number * CHUNK, bytearray(CHUNK))
        with pytest.raises(VddkError):
            disk.read_into(0, bytearray(CHUNK))                 # injected: not counted
        disk.write(0, b"\1" * 4096)
        disk.write(MIB, b"\2" * 4096)
        with pytest.raises(vixerror.VddkOutOfRangeError):
            disk.write(disk.capacity, b"\3" * 512)              # failed: not counted
    assert stats.read_text().startswith("reads 3\nbytes_read 196608\nwrites 2\nbytes_written 8192\n")


def test_retrying_disk_reconnects_through_the_factory(lab, vddk, morefs, monkeypatch):
    monkeypatch.setenv("LABVDDK_FAIL_SCOPE", "handle")
    monkeypatch.setenv("LABVDDK_FAIL_READ_NTH", "2")          # every handle's second read fails
    monkeypatch.setenv("LABVDDK_FAIL_CODE", "14011")
    target = disk_of(lab, "lab-vm1", 1)
    info = lab.info
    factory = connection_factory(vddk, target["fileName"], ConnectParams(
        server=info["host"], vm_moref=morefs["lab-vm1"]._moId, thumbprint=info["thumbprint"], user=info["user"],
        password=info["password"], port=info["port"]))
    sleeps = []
    with open(target["flat"], "rb") as flat:
        expected = flat.read(3 * CHUNK)
    with RetryingDisk(factory, attempts=3, backoff=0.5, sleep=sleeps.append) as disk:
        got = bytearray(3 * CHUNK)
        for number in range(3):
            disk.read_into(number * CHUNK, memoryview(got)[number * CHUNK:(number + 1) * CHUNK])
        assert bytes(got) == expected
        assert disk.retries == 2 and sleeps == [0.5, 0.5]
    monkeypatch.setenv("LABVDDK_FAIL_READ_NTH", "1")
    monkeypatch.setenv("LABVDDK_FAIL_READ_TIMES", "0")
    with RetryingDisk(factory, attempts=3, backoff=0.5, sleep=sleeps.append) as disk:
        with pytest.raises(VddkTransientError) as failure:
            disk.read_into(0, bytearray(512))
        assert failure.value.code == 14011 and disk.retries == 2
    monkeypatch.setenv("LABVDDK_FAIL_CODE", "1")
    with RetryingDisk(factory, attempts=3, sleep=sleeps.append) as disk:
        with pytest.raises(VddkError) as failure:
            disk.read_into(0, bytearray(512))
        assert failure.value.code == 1 and disk.retries == 0


def test_snapshot_view_stable_while_a_restore_writes_concurrently(lab, vddk, morefs):
    """The stand-in's own COW writes racing its own snapshot reads (flock on F, one descriptor per handle)."""
    vm = morefs["lab-vm2"]
    target = disk_of(lab, "lab-vm2", 0)
    before = lab.checksum("lab-vm2", 0)
    failures = []
    with Snapshot(vm, "standin-race") as snap:
        stop = threading.Event()

        def restore():
            rng = random.Random(5)
            try:
                with connect(lab, vddk, vm, read_only=False) as conn, conn.open_disk(target["fileName"]) as disk:
                    while not stop.is_set():
                        offset = rng.randrange(0, disk.capacity // 512 - 256) * 512
                        disk.write(offset, rng.randbytes(rng.randrange(1, 256) * 512))
            except Exception as exc:  # pylint: disable=broad-except
                failures.append(exc)
        writer = threading.Thread(target=restore)
        writer.start()
        try:
            with connect(lab, vddk, vm, snapshot_moref=snap.moref) as conn, conn.open_disk(snap.disks[0]) as disk:
                digests = {read_all(disk, step=256 * 1024) for _round in range(2)}
        finally:
            stop.set()
            writer.join()
    assert not failures
    assert digests == {before}
    assert lab.checksum("lab-vm2", 0) != before
