"""Stand-in API details the wrapper does not use every day: Create, async I/O with Wait, QueryAllocatedBlocks
argument checks. In-process, against the running lab, through the production library object (raw calls where
the wrapper has no method).
"""
import ctypes
import http.server
import os
import ssl
import subprocess
import threading
import urllib.parse

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import VddkError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk import library, structs as S, vixerror
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk.connection import ConnectParams, Connection
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk.disk import create_disk

pytestmark = pytest.mark.lab

MIB = 1 << 20


@pytest.fixture(scope="module")
def vddk(lab):
    return library.initialize(lab.env()["VDDK_LIBDIR"])


@pytest.fixture(scope="module")
def vm2(lab):
    from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
    si = lab.connect()
    try:
        return si.RetrieveContent().searchIndex.FindByInventoryPath("DC0/vm/lab-vm2")._moId
    finally:
        Disconnect(si)


@pytest.fixture
def scratch_disks(lab):
    """Names of disks a test creates in lab-vm2's directory; their files are removed afterwards."""
    names = []
    yield names
    for name in names:
        for suffix in (".vmdk", "-flat.vmdk", "-flat.vmdk.cbt"):
            path = lab.datastore_path() / "lab-vm2" / (name + suffix)
            if path.exists():
                path.unlink()


@pytest.fixture(autouse=True)
def clean_knobs(monkeypatch, request):
    for name in list(os.environ):
        if name.startswith("LABVDDK_"):
            monkeypatch.delenv(name)
    # the Nth-call counters are process-wide: each test starts them again (they restart when the faults change)
    monkeypatch.setenv("LABVDDK_FAIL_RUN", request.node.nodeid)


def connect(lab, vddk, vm, read_only=True, **kwargs):
    info = lab.info
    params = ConnectParams(info["host"], vm, info["thumbprint"], user=info["user"], password=info["password"],
                           port=info["port"], **kwargs)
    return Connection(vddk, params, read_only=read_only)


def test_create_makes_a_sparse_disk_with_descriptor(lab, vddk, vm2, scratch_disks):
    scratch_disks += ["standin-created", "standin-other"]
    root = lab.datastore_path()
    flat = root / "lab-vm2" / "standin-created-flat.vmdk"
    with connect(lab, vddk, vm2, read_only=False) as conn:
        create_disk(conn, "[LocalDS_0] lab-vm2/standin-created.vmdk", 3 * MIB, adapter="buslogic")
        assert flat.stat().st_size == 3 * MIB
        assert flat.stat().st_blocks == 0
        descriptor = (root / "lab-vm2" / "standin-created.vmdk").read_text()
        assert 'RW 6144 VMFS "standin-created-flat.vmdk"' in descriptor
        with pytest.raises(VddkError) as info:
            create_disk(conn, "[LocalDS_0] lab-vm2/standin-created.vmdk", MIB)
        assert info.value.code == 12
        with conn.open_disk("[LocalDS_0] lab-vm2/standin-created.vmdk") as disk:
            assert (disk.capacity, disk.info.adapter) == (3 * MIB, "buslogic")
            assert disk.allocated_extents() == []
            disk.write(MIB, b"\x42" * 4096)
            assert disk.allocated_extents() == [(MIB, 65536)]
    with connect(lab, vddk, vm2) as conn:
        with pytest.raises(vixerror.VddkReadOnlyError) as info:
            create_disk(conn, "[LocalDS_0] lab-vm2/standin-other.vmdk", MIB)
        assert info.value.code == 11
        with pytest.raises(vixerror.VddkNotFoundError) as info:
            conn.open_disk("[NoSuchDS] lab-vm2/standin-created.vmdk")
        assert info.value.code == 4


def test_async_reads_and_writes_call_back_then_wait(lab, vddk, vm2, monkeypatch, scratch_disks):
    scratch_disks.append("standin-async")
    monkeypatch.setenv("LABVDDK_FAIL_READ_NTH", "2")
    monkeypatch.setenv("LABVDDK_FAIL_CODE", "36")
    path = "[LocalDS_0] lab-vm2/standin-async.vmdk"
    results = []
    callback = S.CompletionFunc(lambda data, err: results.append((data, err)))
    with connect(lab, vddk, vm2, read_only=False) as conn:
        create_disk(conn, path, MIB)
        with conn.open_disk(path) as disk:
            raw = disk._handle
            payload = (ctypes.c_uint8 * 1024).from_buffer_copy(b"\x5a" * 1024)
            assert vddk.fn("WriteAsync")(raw, 4, 2, payload, callback, 1) == S.VIX_ASYNC
            buffers = [(ctypes.c_uint8 * 1024)() for number in range(3)]
            for number, buf in enumerate(buffers):
                assert vddk.fn("ReadAsync")(raw, 4, 2, buf, callback, 10 + number) == S.VIX_ASYNC
            assert vddk.fn("Wait")(raw) == 0
            assert results == [(1, 0), (10, 0), (11, 36), (12, 0)]
            assert bytes(buffers[0]) == bytes(buffers[2]) == b"\x5a" * 1024
            assert bytes(buffers[1]) == bytes(1024)             # the injected failure read nothing


def test_query_allocated_blocks_arguments(lab, vddk, vm2):
    path = lab.disks("lab-vm2")[0]["fileName"]
    with connect(lab, vddk, vm2) as conn, conn.open_disk(path) as disk:
        sectors = disk.capacity // 512
        query = vddk.fn("QueryAllocatedBlocks")
        blocks = ctypes.POINTER(S.BlockList)()
        assert query(disk._handle, 0, 128, 64, ctypes.byref(blocks)) == 3            # chunk below 128 sectors
        assert query(disk._handle, 64, 128, 128, ctypes.byref(blocks)) == 3          # start not chunk-aligned
        assert query(disk._handle, 0, 100, 128, ctypes.byref(blocks)) == 3           # count not a chunk multiple
        assert query(disk._handle, sectors, 128, 128, ctypes.byref(blocks)) == 16007  # past the capacity
        assert query(disk._handle, 0, sectors, 128, ctypes.byref(blocks)) == 0
        count = blocks.contents.numBlocks
        listed = ctypes.cast(ctypes.addressof(blocks.contents.blocks), ctypes.POINTER(S.Block * count)).contents
        as_bytes = [(b.offset * 512, b.length * 512) for b in listed]
        vddk.fn("FreeBlockList")(blocks)
        assert as_bytes == disk.allocated_extents()
        assert all(o % 65536 == 0 and n % 65536 == 0 for o, n in as_bytes)


def test_read_into_many_pipelines_and_reports_the_failure(lab, vddk, vm2, monkeypatch):
    target = lab.disks("lab-vm2")[0]
    with open(target["flat"], "rb") as flat:
        expected = flat.read(4 * MIB)
    with connect(lab, vddk, vm2) as conn, conn.open_disk(target["fileName"]) as disk:
        assert disk.can_async
        got = bytearray(4 * MIB)
        view = memoryview(got)
        disk.read_into_many([(number * MIB, view[number * MIB:(number + 1) * MIB]) for number in range(4)])
        assert bytes(got) == expected
    monkeypatch.setenv("LABVDDK_FAIL_READ_NTH", "3")
    monkeypatch.setenv("LABVDDK_FAIL_CODE", "14011")
    with connect(lab, vddk, vm2) as conn, conn.open_disk(target["fileName"]) as disk:
        got = bytearray(4 * MIB)
        view = memoryview(got)
        with pytest.raises(VddkError) as info:
            disk.read_into_many([(number * MIB, view[number * MIB:(number + 1) * MIB]) for number in range(4)])
        assert (info.value.code, info.value.function) == (14011, "VixDiskLib_ReadAsync")
        assert "offset %d, %d bytes" % (2 * MIB, MIB) in str(info.value)
        assert got[3 * MIB:] == expected[3 * MIB:] and got[:2 * MIB] == expected[:2 * MIB]


def test_write_many_lands_in_order(lab, vddk, vm2):
    target = lab.disks("lab-vm2")[0]
    blocks = [(7 * MIB + number * 8192, os.urandom(4096)) for number in range(5)]
    with connect(lab, vddk, vm2, read_only=False) as conn, conn.open_disk(target["fileName"]) as disk:
        disk.write_many([(offset, data if number % 2 else bytearray(data)) for number, (offset, data) in enumerate(blocks)])
    with open(target["flat"], "rb") as flat:
        for offset, data in blocks:
            flat.seek(offset)
            assert flat.read(4096) == data
    with open(target["flat"] + ".cbt", "rb") as log:
        tail = log.read()[-16 * 5:]
    assert [int.from_bytes(tail[pos:pos + 8], "little") for pos in range(0, 80, 16)] == [o for o, _d in blocks]


class _FakeLabHandler(http.server.BaseHTTPRequestHandler):
    """/lab/vddk answering with the datastore of the real lab plus optional `disk` lines (and a 500 for vm-500)."""

    answer = ""

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass

    def do_GET(self):  # pylint: disable=invalid-name
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        status = 500 if query.get("vm") == ["vm-500"] else 200
        self.send_response(status)
        self.end_headers()
        self.wfile.write(self.answer.encode() if status == 200 else b"broken")


@pytest.fixture
def fake_lab(lab, tmp_path):
    """A throwaway HTTPS /lab/vddk (own certificate) over the real lab's datastore directory."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem"), "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    fingerprint = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "cert.pem"), "-noout", "-fingerprint",
                                  "-sha1"], check=True, capture_output=True, text=True).stdout.strip().split("=")[1]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeLabHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeLabHandler.answer = "datastore LocalDS_0 %s\n" % lab.datastore_path()
    yield server.server_address[1], fingerprint
    server.shutdown()
    server.server_close()


def test_disk_lines_restrict_open_to_the_vms_disks(lab, vddk, fake_lab):
    port, thumbprint = fake_lab
    vm2_disk = lab.disks("lab-vm2")[0]["fileName"]
    vm1_disk = lab.disks("lab-vm1")[1]["fileName"]

    def open_fake(path, vm="vm-2"):
        with Connection(vddk, ConnectParams("127.0.0.1", vm, thumbprint, user="u", password="p", port=port)) as conn:
            with conn.open_disk(path) as disk:
                return disk.capacity
    assert open_fake(vm1_disk) == 16 * MIB                 # no disk lines: any disk of a known datastore
    _FakeLabHandler.answer += "disk %s\n" % vm2_disk
    assert open_fake(vm2_disk) == 16 * MIB
    with pytest.raises(vixerror.VddkNotFoundError) as info:
        open_fake(vm1_disk)
    assert info.value.code == 4
    with pytest.raises(VddkError) as info:
        open_fake(vm2_disk, vm="vm-500")
    assert info.value.code == 1 and info.value.function == "VixDiskLib_ConnectEx"
