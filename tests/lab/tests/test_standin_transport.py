"""The stand-in's transport model (PROTOCOL.md section 5) and its process-wide fault counters.

Every assertion is on what the stand-in counts (LABVDDK_STATS) or returns, never on wall time: the model's
sleeps are real, but whether a cap held is read from its own accounting (bytes, busy time of each link, the span
between the first request and the last completion, which can only be longer than the busy time).
In-process, against the running lab, through the production library object.
"""
import ctypes
import os
import threading

import pytest
from pyVmomi import vim

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import VddkError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk import library, structs as S
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk.connection import ConnectParams, Connection
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk.retry import RetryingDisk, connection_factory

pytestmark = pytest.mark.lab

MIB = 1 << 20
KIB = 1 << 10


@pytest.fixture(scope="module")
def vddk(lab):
    return library.initialize(lab.env()["VDDK_LIBDIR"])


@pytest.fixture(scope="module")
def morefs(lab):
    from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
    si = lab.connect()
    try:
        index = si.RetrieveContent().searchIndex
        return {name: index.FindByInventoryPath("DC0/vm/" + name)._moId for name in ("lab-vm1", "lab-vm2")}
    finally:
        Disconnect(si)


@pytest.fixture(autouse=True)
def knobs(monkeypatch, request, tmp_path):
    """Clean LABVDDK_* variables, a fresh fault run and a fresh stats file; returns a setter of knobs."""
    for name in list(os.environ):
        if name.startswith("LABVDDK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LABVDDK_FAIL_RUN", request.node.nodeid)
    monkeypatch.setenv("LABVDDK_STATS", str(tmp_path / "stats"))

    def setter(**values):
        for name, value in values.items():
            monkeypatch.setenv("LABVDDK_" + name.upper(), str(value))
    return setter


def stats(tmp_path):
    """The stand-in's counters as of the last Close (the file is rewritten at every Close)."""
    return {key: int(value) for key, value in
            (line.split() for line in (tmp_path / "stats").read_text().splitlines())}


def connect(lab, vddk, vm, read_only=True, **kwargs):
    info = lab.info
    params = ConnectParams(info["host"], vm, info["thumbprint"], user=info["user"], password=info["password"],
                           port=info["port"], **kwargs)
    return Connection(vddk, params, read_only=read_only)


def disk_path(lab, vm, index=0):
    return lab.disks(vm)[index]["fileName"]


# -- fault counters are process-wide (issue 11, defect 10) -------------------------------------------------------

def test_a_transient_fault_stays_transient_across_the_retry(lab, vddk, morefs, knobs):
    """"Fail the 3rd read once": each attempt reads 4 chunks through ReadAsync. Were the counter reset by the
    retry's ConnectEx, every attempt would fail at its 3rd read and the retry could never get past it."""
    knobs(FAIL_READ_NTH=3, FAIL_READ_TIMES=1, FAIL_CODE=14011)
    target = lab.disks("lab-vm1")[1]
    info = lab.info
    factory = connection_factory(vddk, target["fileName"], ConnectParams(
        server=info["host"], vm_moref=morefs["lab-vm1"], thumbprint=info["thumbprint"], user=info["user"],
        password=info["password"], port=info["port"]))
    with open(target["flat"], "rb") as flat:
        expected = flat.read(4 * MIB)
    got = bytearray(4 * MIB)
    view = memoryview(got)
    sleeps = []
    with RetryingDisk(factory, attempts=3, backoff=0.25, sleep=sleeps.append) as disk:
        disk.read_into_many([(n * MIB, view[n * MIB:(n + 1) * MIB]) for n in range(4)])
        assert disk.retries == 1 and sleeps == [0.25]
    assert bytes(got) == expected


def test_counters_continue_on_a_new_connection(lab, vddk, morefs, knobs):
    knobs(FAIL_READ_NTH=3, FAIL_CODE=36)
    path = disk_path(lab, "lab-vm2")
    outcomes = []
    for _connection in range(2):
        with connect(lab, vddk, morefs["lab-vm2"]) as conn, conn.open_disk(path) as disk:
            for number in range(2):
                try:
                    disk.read_into(number * 4096, bytearray(4096))
                    outcomes.append(0)
                except VddkError as exc:
                    outcomes.append(exc.code)
    assert outcomes == [0, 0, 36, 0]


def test_handle_scope_counts_each_handle_apart(lab, vddk, morefs, knobs):
    knobs(FAIL_READ_NTH=2, FAIL_CODE=36, FAIL_SCOPE="handle")
    path = disk_path(lab, "lab-vm2")
    with connect(lab, vddk, morefs["lab-vm2"]) as conn, conn.open_disk(path) as first, conn.open_disk(path) as second:
        first.read_into(0, bytearray(512))
        second.read_into(0, bytearray(512))
        for disk in (first, second):
            with pytest.raises(VddkError) as info:
                disk.read_into(0, bytearray(512))
            assert info.value.code == 36


def test_an_unknown_scope_or_profile_refuses_to_connect(lab, vddk, morefs, knobs):
    for knob in ({"FAIL_SCOPE": "connection"}, {"FAIL_SCOPE": "process", "TRANSPORT_PROFILE": "vmware-defaults"}):
        knobs(**knob)
        with pytest.raises(VddkError) as info:
            connect(lab, vddk, morefs["lab-vm2"]).connect()
        assert info.value.code == 3


# -- modes -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("modes, env, read_only, expected", [
    ("nbdssl:nbd", {}, True, "nbdssl"),
    ("nbd:nbdssl", {}, True, "nbd"),
    ("hotadd:nbd", {}, True, "nbd"),                                  # not a proxy VM: the next mode
    ("hotadd:nbd", {"HOTADD_PROXY": 1}, True, "hotadd"),
    ("san:hotadd:nbdssl", {"SAN_ACCESS": 1}, True, "san"),
    ("san:nbd", {"SAN_ACCESS": 1}, False, "nbd"),                    # a SAN write needs a snapshot
    ("hotadd:nbdssl", {"HOTADD_PROXY": 1}, False, "nbdssl"),         # so does a hotadd write
])
def test_get_transport_mode_is_the_mode_chosen(lab, vddk, morefs, knobs, tmp_path, modes, env, read_only, expected):
    knobs(**env)
    path = disk_path(lab, "lab-vm2")
    with connect(lab, vddk, morefs["lab-vm2"], read_only=read_only, transport_modes=modes) as conn:
        with conn.open_disk(path) as disk:
            assert disk.transport_mode == expected
    counted = stats(tmp_path)
    assert counted["opens_" + expected] == 1
    assert counted["hotadd_attaches"] == (1 if expected == "hotadd" else 0)


def test_san_write_without_snapshot_is_refused(lab, vddk, morefs, knobs, caplog):
    knobs(SAN_ACCESS=1)
    with connect(lab, vddk, morefs["lab-vm2"], read_only=False, transport_modes="san") as conn:
        with pytest.raises(VddkError) as info:
            conn.open_disk(disk_path(lab, "lab-vm2"))
    assert info.value.code == 13
    assert "san: writing needs a snapshot of the VM" in caplog.text


def test_san_write_with_a_snapshot_writes_the_disk(lab, vddk, morefs, knobs):
    knobs(SAN_ACCESS=1)
    si = lab.connect()
    vm = si.RetrieveContent().searchIndex.FindByInventoryPath("DC0/vm/lab-vm2")
    target = lab.disks("lab-vm2")[0]
    task = vm.CreateSnapshot_Task("san-restore", "standin test", False, False)
    assert task.info.state == "success", task.info.error
    snap = task.info.result
    try:
        before = lab.checksum("lab-vm2", 0, snapshot="san-restore")
        files = [d.backing.fileName for d in snap.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
        with connect(lab, vddk, morefs["lab-vm2"], read_only=False, snapshot_moref=snap._moId,
                     transport_modes="san:nbd") as conn, conn.open_disk(files[0]) as disk:
            assert disk.transport_mode == "san"
            disk.write(2 * MIB, b"\x77" * 8192)
        with open(target["flat"], "rb") as flat:
            flat.seek(2 * MIB)
            assert flat.read(8192) == b"\x77" * 8192
        assert lab.checksum("lab-vm2", 0, snapshot="san-restore") == before
    finally:
        snap.RemoveSnapshot_Task(removeChildren=False)


# -- NFC limits --------------------------------------------------------------------------------------------------

def open_until_refused(lab, vddk, morefs, limit):
    """Open lab-vm2's disk again and again on one nbdssl connection; (handles opened, error of the refusal)."""
    path = disk_path(lab, "lab-vm2")
    handles = []
    with connect(lab, vddk, morefs["lab-vm2"]) as conn:
        try:
            for _number in range(limit):
                try:
                    handles.append(conn.open_disk(path))
                except VddkError as exc:
                    opened = len(handles)
                    handles.pop().close()           # a freed NFC connection can be used again
                    handles.append(conn.open_disk(path))
                    return opened, exc
            return len(handles), None
        finally:
            for handle in handles:
                handle.close()


def test_the_default_profile_refuses_the_49th_nfc_connection(lab, vddk, morefs, knobs, tmp_path, caplog):
    """48 MB of NFC buffers per host at 1 MB per connection (VMware's figures): the 49th open fails."""
    knobs(TRANSPORT_PROFILE="vmware-default")
    opened, error = open_until_refused(lab, vddk, morefs, 60)
    assert opened == 48
    assert error.code == 2 and error.function == "VixDiskLib_Open"
    assert "NFC_NO_MEMORY (buffer memory)" in caplog.text
    counted = stats(tmp_path)
    assert (counted["nfc_refused"], counted["nfc_connections_peak"], counted["nfc_memory_peak"]) == (1, 48, 48 * MIB)


def test_the_nfc_connection_limit(lab, vddk, morefs, knobs, tmp_path, caplog):
    knobs(NFC_MAX_CONNECTIONS=5)
    opened, error = open_until_refused(lab, vddk, morefs, 10)
    assert opened == 5 and error.code == 2
    assert "NFC_NO_MEMORY (connection limit)" in caplog.text


def test_nfc_limits_do_not_apply_to_hotadd(lab, vddk, morefs, knobs, tmp_path):
    knobs(NFC_MAX_CONNECTIONS=1, HOTADD_PROXY=1)
    path = disk_path(lab, "lab-vm2")
    with connect(lab, vddk, morefs["lab-vm2"], transport_modes="hotadd") as conn:
        with conn.open_disk(path), conn.open_disk(path), conn.open_disk(path):
            pass
    counted = stats(tmp_path)
    assert (counted["opens_hotadd"], counted["hotadd_attaches"], counted["nfc_refused"]) == (3, 3, 0)


# -- QueryAllocatedBlocks ----------------------------------------------------------------------------------------

def test_query_allocated_blocks_limits_and_cost(lab, vddk, morefs, knobs, tmp_path):
    knobs(QAB_US=1000)
    with connect(lab, vddk, morefs["lab-vm2"]) as conn, conn.open_disk(disk_path(lab, "lab-vm2")) as disk:
        query = vddk.fn("QueryAllocatedBlocks")
        blocks = ctypes.POINTER(S.BlockList)()
        assert query(disk._handle, 0, 384, 192, ctypes.byref(blocks)) == 3         # not a multiple of 128 sectors
        assert query(disk._handle, 0, 128 * (512 * 1024 + 1), 128, ctypes.byref(blocks)) == 3   # > 512 Ki chunks
        assert query(disk._handle, 0, 512, 256, ctypes.byref(blocks)) == 0
        vddk.fn("FreeBlockList")(blocks)
        disk.allocated_extents()                   # 16 MiB in 64 KiB chunks: one call
    assert stats(tmp_path)["qab_calls"] == 2       # refused queries cost nothing


# -- fragments and bandwidth -------------------------------------------------------------------------------------

def test_nbd_moves_64k_fragments(lab, vddk, morefs, knobs, tmp_path):
    knobs(HOTADD_PROXY=1)
    path = disk_path(lab, "lab-vm2")
    with connect(lab, vddk, morefs["lab-vm2"], transport_modes="nbd") as conn, conn.open_disk(path) as disk:
        disk.read_into(0, bytearray(MIB + 4 * KIB))
        disk.read_into(0, bytearray(512))
    assert stats(tmp_path)["nfc_fragments"] == 17 + 1
    with connect(lab, vddk, morefs["lab-vm2"], transport_modes="hotadd") as conn, conn.open_disk(path) as disk:
        disk.read_into(0, bytearray(MIB))
    counted = stats(tmp_path)
    assert counted["nfc_fragments"] == 18 and counted["bytes_hotadd"] == MIB
    assert counted["bytes_nbd"] == MIB + 4 * KIB + 512


def test_off_by_default(lab, vddk, morefs, tmp_path):
    with connect(lab, vddk, morefs["lab-vm2"]) as conn, conn.open_disk(disk_path(lab, "lab-vm2")) as disk:
        disk.read_into(0, bytearray(MIB))
    counted = stats(tmp_path)
    assert counted["bytes_nbdssl"] == MIB and counted["nfc_fragments"] == 16
    assert counted["throttled_calls"] == counted["host_busy_ns_nbdssl"] == counted["conn_busy_ns_nbdssl"] == 0


def test_connection_cap_holds(lab, vddk, morefs, knobs, tmp_path):
    knobs(NBD_CONN_MIBPS=16)
    with connect(lab, vddk, morefs["lab-vm2"], transport_modes="nbd") as conn:
        with conn.open_disk(disk_path(lab, "lab-vm2")) as disk:
            for number in range(4):
                disk.read_into(number * 512 * KIB, bytearray(512 * KIB))
    counted = stats(tmp_path)
    assert counted["bytes_nbd"] == 2 * MIB
    assert counted["conn_busy_ns_nbd"] == 125_000_000            # 2 MiB at 16 MiB/s
    assert counted["throttled_calls"] == 4
    assert counted["span_ns_nbd"] >= counted["conn_busy_ns_nbd"]


def test_host_cap_is_shared_by_handles(lab, vddk, morefs, knobs, tmp_path):
    """Two disks read in parallel, each handle capped at 32 MiB/s, the host at 16 MiB/s: the host's link decides."""
    knobs(NBD_CONN_MIBPS=32, NBD_HOST_MIBPS=16)
    paths = [disk_path(lab, "lab-vm1", 0), disk_path(lab, "lab-vm1", 1)]
    with connect(lab, vddk, morefs["lab-vm1"], transport_modes="nbd") as conn:
        disks = [conn.open_disk(path) for path in paths]
        try:
            def read(disk):
                for number in range(4):
                    disk.read_into(number * 256 * KIB, bytearray(256 * KIB))
            threads = [threading.Thread(target=read, args=(disk,)) for disk in disks]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for disk in disks:
                disk.close()
    counted = stats(tmp_path)
    assert counted["bytes_nbd"] == 2 * MIB
    assert counted["host_busy_ns_nbd"] == 125_000_000            # 2 MiB at 16 MiB/s, whoever sent them
    assert counted["conn_busy_ns_nbd"] == 62_500_000
    assert counted["span_ns_nbd"] >= counted["host_busy_ns_nbd"]


# -- asynchronous I/O --------------------------------------------------------------------------------------------

def test_async_requests_are_in_flight_together_up_to_the_queue_depth(lab, vddk, morefs, knobs, tmp_path):
    knobs(ASYNC_DEPTH=4, NBD_LATENCY_US=100000)     # far longer than submitting 4 requests takes
    target = lab.disks("lab-vm2")[0]
    with open(target["flat"], "rb") as flat:
        expected = flat.read(MIB)
    got = bytearray(MIB)
    view = memoryview(got)
    with connect(lab, vddk, morefs["lab-vm2"], transport_modes="nbd") as conn, conn.open_disk(target["fileName"]) as disk:
        disk.read_into_many([(n * 128 * KIB, view[n * 128 * KIB:(n + 1) * 128 * KIB]) for n in range(8)])
    assert bytes(got) == expected
    counted = stats(tmp_path)
    assert (counted["async_submitted"], counted["async_max_in_flight"]) == (8, 4)
    assert counted["async_queue_full_waits"] >= 1
    assert counted["calls_nbd"] == 8
