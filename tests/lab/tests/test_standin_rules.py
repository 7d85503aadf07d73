"""The stand-in enforces VDDK's rules (LABVDDK_RULES=abort|error) and the wrapper keeps them.

Each offending sequence runs in a subprocess (this file run as a script: `python test_standin_rules.py SCENARIO`)
through the production wrapper, with the wrapper's own protection bypassed where the scenario needs the misuse to
reach the library. With LABVDDK_RULES=abort the process must die of SIGABRT with the rule's message; with =error
the offending call must return VIX_E_FAIL (1). Positive controls show that the wrapper, used as documented,
breaks no rule under widened timing windows.
"""
import contextlib
import ctypes
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk import connection, library, structs

pytestmark = pytest.mark.lab

ROOT = pathlib.Path(__file__).resolve().parents[3]
VIOLATION = "LABVDDK RULE VIOLATION: "


# -- the scenarios (run in the subprocess) -----------------------------------------------------------------------

def _connect(lib, read_only=True, **kwargs):
    env = os.environ
    params = connection.ConnectParams(env["VMWARE_HOST"], env["STANDIN_VM"], env["VDDK_THUMBPRINT"],
                                      user=env["VMWARE_USER"], password=env["VMWARE_PASSWORD"],
                                      port=int(env["VMWARE_PORT"]), **kwargs)
    return connection.Connection(lib, params, read_only=read_only).connect()


def _result(code):
    print("RESULT %d" % code, flush=True)


def _run_threads(target, count):
    codes = []

    def run():
        try:
            target()
            codes.append(0)
        except Exception as exc:  # pylint: disable=broad-except
            codes.append(getattr(exc, "code", -1))
    threads = [threading.Thread(target=run) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def scenario_before_init():
    cdll, path = library.load_library(os.environ["VDDK_LIBDIR"])
    library._declare(cdll, path)
    handle = ctypes.c_void_p()
    _result(cdll.VixDiskLib_Open(None, b"[LocalDS_0] x.vmdk", 0, ctypes.byref(handle)))


def scenario_init_twice():
    lib = library.initialize(os.environ["VDDK_LIBDIR"])
    bridge = library._STATE["bridge"]
    _result(lib.cdll.VixDiskLib_InitEx(6, 5, bridge.log, bridge.warn, bridge.panic, None, None))


def scenario_null_log():
    cdll, path = library.load_library(os.environ["VDDK_LIBDIR"])
    library._declare(cdll, path)
    _result(cdll.VixDiskLib_InitEx(6, 5, structs.LogFunc(), structs.LogFunc(), structs.LogFunc(), None, None))


def scenario_serial_overlap():
    lib = library.initialize(os.environ["VDDK_LIBDIR"])
    connection.SERIAL_LOCK = contextlib.nullcontext()        # the product bug: ConnectEx unserialized
    codes = _run_threads(lambda: _connect(lib), 2)
    _result(max(codes))


def scenario_handle_overlap():
    lib = library.initialize(os.environ["VDDK_LIBDIR"])
    conn = _connect(lib)
    disk = conn.open_disk(os.environ["STANDIN_DISK"])
    disk._io_lock = contextlib.nullcontext()                 # the product bug: one handle shared by two threads
    codes = _run_threads(lambda: disk.read_into(0, bytearray(65536)), 2)
    _result(max(codes))
    os._exit(0)


def scenario_close_async_pending():
    lib = library.initialize(os.environ["VDDK_LIBDIR"])
    conn = _connect(lib)
    disk = conn.open_disk(os.environ["STANDIN_DISK"])
    callback = structs.CompletionFunc(lambda data, err: time.sleep(1.0))
    buf = (ctypes.c_uint8 * 512)()
    queued = lib.fn("ReadAsync")(disk._handle, 0, 1, buf, callback, None)
    if queued != structs.VIX_ASYNC:
        raise SystemExit("ReadAsync returned %d" % queued)
    with library.SERIAL_LOCK:
        _result(lib.fn("Close")(disk._handle))              # the product bug: no Wait before Close
    os._exit(0)


def scenario_disconnect_with_open_handle():
    lib = library.initialize(os.environ["VDDK_LIBDIR"])
    conn = _connect(lib)
    conn.open_disk(os.environ["STANDIN_DISK"])
    with library.SERIAL_LOCK:
        _result(lib.fn("Disconnect")(conn.raw_handle()))
    os._exit(0)


def scenario_closed_handle():
    lib = library.initialize(os.environ["VDDK_LIBDIR"])
    conn = _connect(lib)
    disk = conn.open_disk(os.environ["STANDIN_DISK"])
    stale = disk._handle
    disk.close()
    _result(lib.fn("Read")(stale, 0, 1, (ctypes.c_uint8 * 512)()))
    os._exit(0)


def scenario_fork_after_init():
    lib = library.initialize(os.environ["VDDK_LIBDIR"])
    pid = os.fork()
    if pid == 0:
        _result(lib.fn("ConnectEx")(None, b"\1", None, None, None))
        os._exit(0)
    status = os.waitpid(pid, 0)[1]
    print("CHILD_SIGNAL %d" % (os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0), flush=True)


def scenario_concurrent_workers_ok():
    """Positive control: 4 workers, each with its own connection and handle, as the product runs them."""
    lib = library.initialize(os.environ["VDDK_LIBDIR"])

    def worker():
        with _connect(lib) as conn, conn.open_disk(os.environ["STANDIN_DISK"]) as disk:
            buf = bytearray(65536)
            for i in range(4):
                disk.read_into(i * 65536, buf)
    codes = _run_threads(worker, 4)
    shared = _connect(lib).open_disk(os.environ["STANDIN_DISK"])
    codes += _run_threads(lambda: shared.read_into(0, bytearray(4096)), 3)     # shared handle: the lock serializes
    shared.connection.close()
    _result(max(codes))


def scenario_noqab():
    lib = library.initialize(os.environ["VDDK_LIBDIR"] + "-noqab")
    with _connect(lib) as conn, conn.open_disk(os.environ["STANDIN_DISK"]) as disk:
        print("EXTENTS %r %r" % (disk.allocated_extents(), disk.can_query_allocation), flush=True)
    _result(0)


def scenario_stats_at_exit():
    lib = library.initialize(os.environ["VDDK_LIBDIR"])
    conn = _connect(lib)
    disk = conn.open_disk(os.environ["STANDIN_DISK"])
    disk.read_into(0, bytearray(8192))
    disk.read_into(8192, bytearray(512))
    with library.SERIAL_LOCK:
        lib.cdll.VixDiskLib_Exit()                           # Exit with the disk still open: counters still written
    os._exit(0)


# -- the tests ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def standin_env(lab):
    si = lab.connect()
    try:
        vm = si.RetrieveContent().searchIndex.FindByInventoryPath("DC0/vm/lab-vm2")
        moref = vm._moId
    finally:
        from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
        Disconnect(si)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABVDDK_")}
    env.update(lab.env())
    env["STANDIN_VM"] = moref
    env["STANDIN_DISK"] = lab.disks("lab-vm2")[0]["fileName"]
    env["PYTHONPATH"] = str(ROOT / "build" / "collections")
    return env


def run_scenario(env, name, **extra):
    env = dict(env)
    env.update({k: str(v) for k, v in extra.items()})
    return subprocess.run([sys.executable, __file__, name], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


RULES = [
    ("before_init", "VixDiskLib_Open called before VixDiskLib_InitEx", {}),
    ("init_twice", "VixDiskLib_InitEx called twice without VixDiskLib_Exit", {}),
    ("null_log", "VixDiskLib_InitEx called with a NULL log/warn/panic callback", {}),
    ("serial_overlap", "VixDiskLib_ConnectEx called while VixDiskLib_ConnectEx runs in another thread",
     {"LABVDDK_LATENCY_US": 300000}),
    ("handle_overlap", "while another call on the same handle is in progress: I/O on one handle must be serialized",
     {"LABVDDK_LATENCY_US": 300000}),
    ("close_async_pending", "with 1 asynchronous I/O(s) pending (call VixDiskLib_Wait first)", {}),
    ("disconnect_with_open_handle", "VixDiskLib_Disconnect with 1 disk handle(s) still open on the connection", {}),
    ("closed_handle", "VixDiskLib_Read called with a closed or unknown disk handle", {}),
]


@pytest.mark.parametrize("scenario, message, extra", RULES, ids=[r[0] for r in RULES])
def test_rule_aborts(standin_env, scenario, message, extra):
    result = run_scenario(standin_env, "scenario_" + scenario, LABVDDK_RULES="abort", **extra)
    assert result.returncode == -signal.SIGABRT, (result.stdout, result.stderr)
    assert VIOLATION in result.stderr and message in result.stderr, result.stderr
    assert "RESULT" not in result.stdout


@pytest.mark.parametrize("scenario, message, extra", RULES, ids=[r[0] for r in RULES])
def test_rule_error_mode_returns_vix_e_fail(standin_env, scenario, message, extra):
    result = run_scenario(standin_env, "scenario_" + scenario, LABVDDK_RULES="error", **extra)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "RESULT 1\n" in result.stdout
    assert VIOLATION in result.stderr and message in result.stderr, result.stderr


def test_fork_after_init_aborts_the_child(standin_env):
    result = run_scenario(standin_env, "scenario_fork_after_init", LABVDDK_RULES="abort")
    assert result.returncode == 0, result.stderr
    assert "CHILD_SIGNAL %d\n" % signal.SIGABRT in result.stdout
    assert "VixDiskLib_ConnectEx called in process" in result.stderr
    assert "forked after VixDiskLib_InitEx in process" in result.stderr


def test_fork_after_init_error_mode(standin_env):
    result = run_scenario(standin_env, "scenario_fork_after_init", LABVDDK_RULES="error")
    assert "RESULT 1\n" in result.stdout and "CHILD_SIGNAL 0\n" in result.stdout
    assert "forked after VixDiskLib_InitEx" in result.stderr


def test_wrapper_keeps_the_rules_under_wide_windows(standin_env):
    result = run_scenario(standin_env, "scenario_concurrent_workers_ok", LABVDDK_RULES="abort", LABVDDK_LATENCY_US=20000)
    assert result.returncode == 0, result.stderr
    assert "RESULT 0\n" in result.stdout
    assert VIOLATION not in result.stderr


def test_noqab_variant_has_no_allocation(standin_env):
    result = run_scenario(standin_env, "scenario_noqab")
    assert result.returncode == 0, result.stderr
    assert "EXTENTS None False\n" in result.stdout


def test_stats_written_at_exit(standin_env, tmp_path):
    stats = tmp_path / "stats"
    result = run_scenario(standin_env, "scenario_stats_at_exit", LABVDDK_STATS=stats)
    assert result.returncode == 0, result.stderr
    assert stats.read_text().startswith("reads 2\nbytes_read 8704\nwrites 0\nbytes_written 0\n")


if __name__ == "__main__":
    globals()[sys.argv[1]]()
