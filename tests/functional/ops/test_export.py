"""Instant access (ops.export): a restore point served by nbdkit, read by real NBD clients (libnbd's nbdinfo and
nbdcopy, qemu-img), compared byte for byte with a restore to file of the same restore point (sha256 computed here)."""
import hashlib
import json
import os
import select
import signal
import subprocess

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from opslab import ops_export, sha256_file  # pylint: disable=import-error
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import RestorePointQuery

pytestmark = pytest.mark.lab


@pytest.fixture(autouse=True)
def _no_export_left(env):
    """A test that fails half-way must not leave nbdkit running: stop whatever its state directory still lists."""
    yield
    if (env.tmp_path / "state").exists():      # the env fixture's XDG_STATE_HOME: where this test's exports are
        for export in ops_export.list_exports()["exports"]:
            ops_export.stop_exports(ops_export.ExportSelector(name=export["name"]))


def _backup_with_holes(env):
    """A restore point of lab-vm1 whose disk 0 has data chunks and zero chunks; (restore point id, disk key)."""
    result = env.backup("lab-vm1")
    return result["restore_point"]["id"], result["disks"][0]["key"]


def _start(env, rp_id, **options):
    request = ops_export.ExportRequest(source=RestorePointQuery(rp_id), **options)
    return ops_export.start_export(request, env.endpoints)


def _nbdcopy(uri, path):
    subprocess.run(["nbdcopy", uri, str(path)], check=True, timeout=300)
    return sha256_file(path)


def _stored_map(env, rp_id, key):
    """[(offset, length, zero)] runs of the stored index, merged: what block status must answer."""
    repository = env.repository()
    try:
        index = repository.load_disk_index(rp_id, key)
    finally:
        repository.close()
    runs = []
    for number in range(index.count):
        start, length, zero = number * index.chunk_size, index.chunk_length(number), index.is_zero(number)
        if runs and runs[-1][2] == zero:
            runs[-1][1] += length
        else:
            runs.append([start, length, zero])
    return [tuple(run) for run in runs]


def _nbdinfo_map(uri):
    done = subprocess.run(["nbdinfo", "--map", "--json", uri], check=True, capture_output=True, text=True, timeout=120)
    runs = []
    for extent in json.loads(done.stdout):
        zero = extent["type"] == 3      # hole + zero
        assert extent["type"] in (0, 3), extent
        if runs and runs[-1][2] == zero:
            runs[-1][1] += extent["length"]
        else:
            runs.append([extent["offset"], extent["length"], zero])
    return [tuple(run) for run in runs]


def test_an_export_reads_byte_exact_with_nbdinfo_nbdcopy_and_qemu_img_and_maps_the_holes(env, tmp_path):
    rp_id, key = _backup_with_holes(env)
    restored = env.restore_file(rp_id, key)
    expected = sha256_file(restored)
    result = _start(env, rp_id, disks=[key])
    try:
        assert result["changed"] is True
        uri = result["uris"][key]
        info = json.loads(subprocess.run(["nbdinfo", "--json", uri], check=True, capture_output=True, text=True,
                                         timeout=60).stdout)
        assert info["exports"][0]["export-size"] == os.path.getsize(restored) > 0
        assert info["exports"][0]["is_read_only"] is True
        assert _nbdcopy(uri, tmp_path / "nbdcopy.raw") == expected
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "raw", uri, str(tmp_path / "qemu.raw")], check=True,
                       timeout=300)
        assert sha256_file(tmp_path / "qemu.raw") == expected
        stored = _stored_map(env, rp_id, key)
        assert any(run[2] for run in stored) and any(not run[2] for run in stored)   # the test means something
        assert _nbdinfo_map(uri) == stored
    finally:
        ops_export.stop_exports(ops_export.ExportSelector(name=result["export"]["name"]))


def _objects(env):
    """sha256 of every file under the local repository, by path: the repository's objects, byte for byte."""
    root = env.repo.location
    hashes = {}
    for directory, _subdirectories, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            if "/locks/" not in path + "/":     # the export's own shared lock comes and goes
                hashes[os.path.relpath(path, root)] = sha256_file(path)
    return hashes


def test_several_clients_at_once_and_a_client_killed_mid_read_leave_the_export_serving(env, tmp_path):
    rp_id, key = _backup_with_holes(env)
    expected = sha256_file(env.restore_file(rp_id, key))
    result = _start(env, rp_id)
    uri = result["uris"][key]
    try:
        clients = [subprocess.Popen(["nbdcopy", uri, str(tmp_path / ("client-%d.raw" % n))]) for n in range(4)]
        assert [client.wait(timeout=300) for client in clients] == [0, 0, 0, 0]
        assert {sha256_file(tmp_path / ("client-%d.raw" % n)) for n in range(4)} == {expected}
        # a reader blocked on its stdout pipe after the first MiB is mid-read for certain when it is killed
        reader = subprocess.Popen(["nbdcopy", "--synchronous", uri, "-"], stdout=subprocess.PIPE)
        assert len(reader.stdout.read(1 << 20)) == 1 << 20
        reader.send_signal(signal.SIGKILL)
        reader.wait(timeout=60)
        reader.stdout.close()
        assert _nbdcopy(uri, tmp_path / "after-kill.raw") == expected
    finally:
        ops_export.stop_exports(ops_export.ExportSelector(name=result["export"]["name"]))


def test_the_export_killed_mid_read_fails_its_client_without_a_wrong_byte_and_is_cleaned_up(env, tmp_path):
    rp_id, key = _backup_with_holes(env)
    expected = env.restore_file(rp_id, key).read_bytes()
    result = _start(env, rp_id, name="killed-mid-read")
    # a reader blocked on its stdout pipe after the first MiB is mid-read for certain when its server is killed
    reader = subprocess.Popen(["nbdcopy", "--synchronous", result["uris"][key], "-"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    received = reader.stdout.read(1 << 20)
    nbdkit = result["pids"][0]
    exited = os.pidfd_open(nbdkit)
    os.kill(nbdkit, signal.SIGKILL)
    assert select.select([exited], [], [], 60)[0] == [exited]
    os.close(exited)
    received += reader.stdout.read()
    status = reader.wait(timeout=60)
    error = reader.stderr.read().decode(errors="replace")
    reader.stdout.close()
    reader.stderr.close()
    # the client says it failed, and what it received before is the restore point's bytes: nothing wrong, only short
    assert status != 0 and error, (status, error)
    assert len(received) < len(expected) and received == expected[:len(received)]
    # the next call finds the dead export and cleans it up; a new export of the same point serves it whole
    listed = ops_export.list_exports()
    assert listed["cleaned"] == ["killed-mid-read"] and listed["exports"] == []
    assert not os.path.exists(result["export"]["runtime_dir"])
    again = _start(env, rp_id, name="after-the-kill")
    try:
        assert _nbdcopy(again["uris"][key], tmp_path / "again.raw") == hashlib.sha256(expected).hexdigest()
    finally:
        ops_export.stop_exports(ops_export.ExportSelector(name="after-the-kill"))


def test_a_writable_export_takes_writes_in_its_overlay_and_leaves_the_repository_untouched(env, tmp_path):
    rp_id, key = _backup_with_holes(env)
    expected = sha256_file(env.restore_file(rp_id, key))
    before = _objects(env)
    result = _start(env, rp_id, disks=[key], writable=True, name="overlay")
    uri = result["uris"][key]
    try:
        size = result["export"]["disks"][0]["capacity"]
        written = tmp_path / "written.raw"
        written.write_bytes(hashlib.sha256(b"seed").digest() * (size // 32))
        subprocess.run(["nbdcopy", str(written), uri], check=True, timeout=300)
        assert _nbdcopy(uri, tmp_path / "read-back.raw") == sha256_file(written) != expected
    finally:
        ops_export.stop_exports(ops_export.ExportSelector(name="overlay"))
    assert not os.path.exists(result["export"]["runtime_dir"])
    assert _objects(env) == before
    again = _start(env, rp_id, disks=[key])
    try:
        assert _nbdcopy(again["uris"][key], tmp_path / "fresh.raw") == expected
    finally:
        ops_export.stop_exports(ops_export.ExportSelector(restore_point=rp_id))


def test_present_again_is_unchanged_and_other_settings_are_refused(env):
    rp_id = _backup_with_holes(env)[0]
    first = _start(env, rp_id)
    try:
        again = _start(env, rp_id)
        assert again["changed"] is False and again["uris"] == first["uris"] and again["pids"] == first["pids"]
        with pytest.raises(ConfigurationError, match="runs already with other settings"):
            _start(env, rp_id, writable=True)
        listed = ops_export.list_exports()["exports"]
        assert [export["name"] for export in listed] == [rp_id]
        _assert_no_secret_in(first, env)
    finally:
        stopped = ops_export.stop_exports(ops_export.ExportSelector(vm_name="lab-vm1"))
    assert stopped["stopped"] == [rp_id] and stopped["changed"] is True
    assert ops_export.stop_exports(ops_export.ExportSelector(vm_name="lab-vm1"))["changed"] is False
    assert ops_export.list_exports()["exports"] == []


def _assert_no_secret_in(result, env):
    """The passphrase is in no command line, environment, state file, log or file of the export's directory."""
    secret = env.repo.passphrase.encode()
    places = []
    for pid in result["pids"]:
        places += ["/proc/%d/cmdline" % pid, "/proc/%d/environ" % pid]
    for directory in (result["export"]["runtime_dir"], os.path.join(os.environ["XDG_STATE_HOME"], "blockvault", "exports")):
        for root, _subdirectories, files in os.walk(directory):
            places += [os.path.join(root, name) for name in files if not name.endswith(".sock")]
    assert len(places) > 4
    for place in places:
        with open(place, "rb") as handle:
            assert secret not in handle.read(), place
    assert env.repo.passphrase not in json.dumps(result)


def test_an_export_holds_a_shared_lock_and_survives_a_prune_of_its_restore_point_and_a_gc(env, tmp_path):
    rp_id, key = _backup_with_holes(env)
    expected = sha256_file(env.restore_file(rp_id, key))
    result = _start(env, rp_id, disks=[key])
    try:
        repository = env.repository()
        try:
            repository.delete_restore_point(rp_id)
            beside = repository.gc(lock_wait=0)      # GC runs beside the export: it condemns, deletes nothing
            assert beside["chunks_removed"] == 0 and beside["chunks_condemned"] > 0 and beside["sessions_waited_for"] == 1
        finally:
            repository.close()
        assert _nbdcopy(result["uris"][key], tmp_path / "pruned.raw") == expected
    finally:
        ops_export.stop_exports(ops_export.ExportSelector(name=rp_id))
    repository = env.repository()
    try:
        after = repository.gc(lock_wait=0)       # the export stopped: its lock went with it, the chunks go
        assert after["chunks_removed"] == beside["chunks_condemned"] and after["chunks_condemned"] == 0
    finally:
        repository.close()


def test_an_export_whose_nbdkit_or_owner_was_killed_is_cleaned_up_by_the_next_call(env):
    rp_id = _backup_with_holes(env)[0]
    killed = _start(env, rp_id, name="killed")
    exited = os.pidfd_open(killed["pids"][0])     # readable once the process has exited: the kill has landed
    os.kill(killed["pids"][0], signal.SIGKILL)
    assert select.select([exited], [], [], 60)[0] == [exited]
    os.close(exited)
    dead_owner = subprocess.Popen(["true"])
    dead_owner.wait()
    orphan = ops_export.start_export(ops_export.ExportRequest(source=RestorePointQuery(rp_id), name="orphan"),
                                     env.endpoints, owner_pid=dead_owner.pid)
    assert orphan["cleaned"] == ["killed"]          # the next call after the kill found it
    listed = ops_export.list_exports()
    assert listed["cleaned"] == ["orphan"] and listed["exports"] == []
    for result in (killed, orphan):
        assert not os.path.exists(result["export"]["runtime_dir"])
        assert all(not os.path.exists("/proc/%d" % pid) or "nbdkit" not in open("/proc/%d/cmdline" % pid).read()
                   for pid in result["pids"])
    repository = env.repository()
    try:
        repository.gc(lock_wait=0)       # the killed nbdkit's lock is stale: its pid is dead on this machine
    finally:
        repository.close()


def test_the_context_manager_serves_every_disk_and_removes_everything_on_exit(env, tmp_path):
    rp_id, key = _backup_with_holes(env)
    expected = sha256_file(env.restore_file(rp_id, key))
    with ops_export.exported(RestorePointQuery(vm_name="lab-vm1"), env.endpoints) as held:
        assert held.restore_point["id"] == rp_id and len(held.uris) == 2
        assert _nbdcopy(held.uris[key], tmp_path / "held.raw") == expected
        runtime = ops_export.list_exports()["exports"][0]["runtime_dir"]
    assert not os.path.exists(runtime) and ops_export.list_exports()["exports"] == []


def test_tcp_on_loopback_serves_and_a_public_address_without_tls_is_refused(env, tmp_path):
    with pytest.raises(ConfigurationError, match="not a loopback address.*only with TLS"):
        ops_export.Listen(kind="tcp", address="192.0.2.10")
    with pytest.raises(ConfigurationError, match="only with TLS"):
        ops_export.Listen(kind="tcp", address="0.0.0.0")
    rp_id, key = _backup_with_holes(env)
    expected = sha256_file(env.restore_file(rp_id, key))
    port = _free_port()
    result = _start(env, rp_id, disks=[key], listen=ops_export.Listen(kind="tcp", port=port))
    try:
        assert result["uris"][key] == "nbd://127.0.0.1:%d/" % port
        assert _nbdcopy(result["uris"][key], tmp_path / "tcp.raw") == expected
    finally:
        ops_export.stop_exports(ops_export.ExportSelector(name=rp_id))


def _free_port():
    import socket  # pylint: disable=import-outside-toplevel
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_tls_with_a_pre_shared_key_is_required_of_every_client(env, tmp_path):
    rp_id, key = _backup_with_holes(env)
    expected = sha256_file(env.restore_file(rp_id, key))
    psk = tmp_path / "nbd.psk"
    psk.write_text("restore:%s\n" % hashlib.sha256(b"test key").hexdigest())
    port = _free_port()
    listen = ops_export.Listen(kind="tcp", port=port, tls_psk_file=str(psk), tls_username="restore")
    result = _start(env, rp_id, disks=[key], listen=listen)
    try:
        uri = result["uris"][key]
        assert uri.startswith("nbds://restore@127.0.0.1:%d/" % port)
        assert _nbdcopy(uri, tmp_path / "tls.raw") == expected
        plain = subprocess.run(["nbdinfo", "nbd://127.0.0.1:%d/" % port], capture_output=True, text=True, timeout=60,
                               check=False)
        assert plain.returncode != 0        # no TLS, no data
    finally:
        ops_export.stop_exports(ops_export.ExportSelector(name=rp_id))
