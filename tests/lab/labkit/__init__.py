"""Driver of the lab's vCenter simulator (build/vcsim/blockvault-vcsim): start, wait until ready, stop.

    lab = Lab.start(tmpdir, port=0, vm1_disk0="64M", vm1_disk1="16M", vm2_disk0="16M", page_limit=4)
    os.environ.update(lab.env())     # VMWARE_HOST ... VDDK_THUMBPRINT for the product and labctl
    lab.checksum("lab-vm1", 0)       # lab endpoints, see tests/lab/PROTOCOL.md section 4
    lab.stop()

A Lab owns one simulator process; it is not thread-safe (use one per test session).
"""
import base64
import json
import os
import pathlib
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from .children import ends_with_this_process

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
DEFAULT_BINARY = REPO_ROOT / "build" / "vcsim" / "blockvault-vcsim"
VDDK_LIBDIR = REPO_ROOT / "build" / "vddk"
LABCTL = REPO_ROOT / "tests" / "lab" / "labctl.py"   # tests/lab/labctl is its shell launcher
LOG_NAME = "vcsim.log"
DEFAULT_START_TIMEOUT = 90.0

__all__ = ["Lab", "LabError", "DEFAULT_BINARY", "VDDK_LIBDIR", "LABCTL", "REPO_ROOT", "binary_path"]


class LabError(Exception):
    """The simulator could not be started, stopped or asked something."""


def binary_path():
    """The simulator binary: $BLOCKVAULT_VCSIM_BINARY or build/vcsim/blockvault-vcsim of this checkout."""
    return pathlib.Path(os.environ.get("BLOCKVAULT_VCSIM_BINARY") or DEFAULT_BINARY)


def _size_arg(value):
    return str(value)


def _log_tail(path, limit=4000):
    try:
        text = pathlib.Path(path).read_text(errors="replace")
    except OSError:
        return "(no simulator log)"
    return text[-limit:] if text else "(simulator log is empty)"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone, and so does a reused pid
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"blockvault-vcsim" in cmdline.read()
    except OSError:
        return False


class Lab:
    """One running simulator. Create with Lab.start(...) (or Lab.attach(dir) for one started elsewhere)."""

    def __init__(self, directory, info, process=None):
        self.dir = pathlib.Path(directory)
        self.info = info
        self.process = process
        self._ssl = None
        self.final_log = None   # the simulator's whole log (stdout and stderr), kept by stop() before it deletes it

    # -- lifecycle -----------------------------------------------------------------------------------------
    @classmethod
    def start(cls, directory, port=0, vm1_disk0=None, vm1_disk1=None, vm2_disk0=None, page_limit=None, seed=None,
              user=None, password=None, binary=None, timeout=DEFAULT_START_TIMEOUT, detach=False, reuse=False,
              session_idle=None, extra_vms=None, extra_vm_disk=None):
        """Spawn the simulator on 127.0.0.1:port with its state in directory; return once lab.json is written.

        Sizes are bytes or strings like "64M"/"1G". detach=True starts it in its own session so that it outlives
        this process (the CLI does this); stop it with Lab.attach(directory).stop(). reuse=True returns the lab
        already running in directory instead of failing. Files of a lab that died without cleaning up (lab.json of
        a dead pid) are removed first. session_idle: seconds after which an idle vCenter session is logged out
        (default vCenter's 30 minutes). extra_vms: that many more VMs of one disk each (lab-vm3, lab-vm4, ...) of
        extra_vm_disk bytes (default 64M), for fleet benchmarks.
        """
        directory = pathlib.Path(directory).resolve()
        binary = pathlib.Path(binary) if binary else binary_path()
        if not binary.is_file() or not os.access(binary, os.X_OK):
            raise LabError(f"simulator binary {binary} not found or not executable: run `make build-lab` first")
        directory.mkdir(parents=True, exist_ok=True)
        lab_json = directory / "lab.json"
        if lab_json.exists():
            existing = cls.attach(directory)
            if existing.running():
                if reuse:
                    return existing
                raise LabError(f"a lab already runs in {directory} (pid {existing.pid}): stop it first")
            cls._remove_stale(directory)
        args = [str(binary), "--dir", str(directory), "--port", str(int(port))]
        for flag, value in (("--vm1-disk0", vm1_disk0), ("--vm1-disk1", vm1_disk1), ("--vm2-disk0", vm2_disk0),
                            ("--cbt-page-limit", page_limit), ("--seed", seed), ("--user", user),
                            ("--password", password), ("--extra-vms", extra_vms), ("--extra-vm-disk", extra_vm_disk)):
            if value is not None:
                args += [flag, _size_arg(value)]
        if session_idle is not None:
            args += ["--session-idle-timeout", "%gs" % session_idle]
        log_path = directory / LOG_NAME
        with open(log_path, "wb") as log:
            process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=detach, close_fds=True,
                                       preexec_fn=None if detach else ends_with_this_process())
        deadline = time.monotonic() + timeout
        while True:
            if lab_json.exists():
                info = json.loads(lab_json.read_text())
                if info.get("pid") == process.pid:
                    return cls(directory, info, process)
            if process.poll() is not None:
                raise LabError(f"the simulator exited with status {process.returncode} before it was ready; "
                               f"its log ({log_path}):\n{_log_tail(log_path)}")
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise LabError(f"the simulator was not ready after {timeout:.0f} s; its log ({log_path}):\n"
                               f"{_log_tail(log_path)}")
            time.sleep(0.05)

    @staticmethod
    def _remove_stale(directory):
        """Remove what a simulator killed without cleanup left in directory (it refuses to start over them)."""
        for name in ("lab.json", "lab.json.tmp", "ca.pem", "ca.pem.tmp", LOG_NAME):
            (directory / name).unlink(missing_ok=True)
        datastores = directory / "datastores"
        if datastores.is_dir():
            shutil.rmtree(datastores)

    @classmethod
    def attach(cls, directory):
        """The lab already running in directory (from its lab.json)."""
        directory = pathlib.Path(directory).resolve()
        try:
            info = json.loads((directory / "lab.json").read_text())
        except FileNotFoundError as exc:
            raise LabError(f"no lab runs in {directory} (no lab.json)") from exc
        return cls(directory, info)

    @property
    def pid(self):
        return self.info["pid"]

    def running(self):
        if self.process is not None:
            return self.process.poll() is None
        return _pid_alive(self.pid)

    def stop(self, timeout=60.0):
        """SIGTERM the simulator and wait for it to exit; returns its exit status (None if not our child)."""
        if self.running():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        status = None
        if self.process is not None:
            try:
                status = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise LabError(f"the simulator (pid {self.pid}) did not stop within {timeout:.0f} s; killed it; "
                               f"log:\n{_log_tail(self.dir / LOG_NAME)}") from None
        else:
            deadline = time.monotonic() + timeout
            while _pid_alive(self.pid):
                if time.monotonic() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    raise LabError(f"the simulator (pid {self.pid}) did not stop within {timeout:.0f} s; killed it")
                time.sleep(0.05)
        if status not in (None, 0):
            raise LabError(f"the simulator exited with status {status}; log:\n{_log_tail(self.dir / LOG_NAME)}")
        self.final_log = self.log_text()
        try:
            (self.dir / LOG_NAME).unlink()
        except FileNotFoundError:
            pass
        return status

    def log_text(self):
        """The simulator's log so far ("" when there is none); after stop(), the log it had when it stopped."""
        try:
            return (self.dir / LOG_NAME).read_text(errors="replace")
        except FileNotFoundError:
            return self.final_log or ""

    def panics(self):
        """The lines of the simulator's log that report a panic (the front handler's "lab: panic ...", net/http's
        "http: panic serving ...", the Go runtime's "panic: ..."), with the stack that follows each."""
        lines = self.log_text().splitlines()
        out = []
        for index, line in enumerate(lines):
            if "panic" in line.lower():
                out.append("\n".join(lines[index:index + 12]))
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- what clients need ---------------------------------------------------------------------------------
    def env(self):
        """The variables the product and labctl read."""
        return {
            "VMWARE_HOST": self.info["host"],
            "VMWARE_PORT": str(self.info["port"]),
            "VMWARE_USER": self.info["user"],
            "VMWARE_PASSWORD": self.info["password"],
            "VMWARE_CA_BUNDLE": self.info["ca_bundle"],
            "VDDK_LIBDIR": str(VDDK_LIBDIR),
            "VDDK_THUMBPRINT": self.info["thumbprint"],
        }

    def ssl_context(self):
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=self.info["ca_bundle"])
        return self._ssl

    def connect(self):
        """A logged-in pyvmomi ServiceInstance (TLS verified with the lab CA). Disconnect it when done."""
        from pyVim.connect import SmartConnect  # pylint: disable=import-outside-toplevel
        return SmartConnect(host=self.info["host"], port=int(self.info["port"]), user=self.info["user"],
                            pwd=self.info["password"], sslContext=self.ssl_context())

    def datastore_path(self, name="LocalDS_0"):
        return pathlib.Path(self.info["datastores"][name])

    # -- lab endpoints (PROTOCOL.md section 4) -----------------------------------------------------------------
    def request(self, method, path, body=None, **params):
        """Call a /lab endpoint with Basic credentials (``body``: bytes to POST); returns the answer's body (bytes);
        LabError on HTTP errors."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"https://{self.info['host']}:{self.info['port']}{path}" + (f"?{query}" if query else "")
        token = base64.b64encode(f"{self.info['user']}:{self.info['password']}".encode()).decode()
        req = urllib.request.Request(url, method=method, headers={"Authorization": "Basic " + token},
                                     data=(body or b"") if method == "POST" else None)
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=120) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            raise LabError(f"{method} {path}: HTTP {exc.code}: {exc.read().decode(errors='replace').strip()}") \
                from None

    def write(self, vm, disk, offset, length, seed=1):
        return json.loads(self.request("POST", "/lab/write", vm=vm, disk=disk, offset=offset, length=length,
                                       seed=seed))

    def write_bytes(self, vm, disk, offset, data):
        """A guest write of ``data`` (bytes) at ``offset`` (POST /lab/write-bytes; labkit.guestfs uses it)."""
        return json.loads(self.request("POST", "/lab/write-bytes", body=bytes(data), vm=vm, disk=disk, offset=offset))

    def checksum(self, vm, disk, snapshot=None):
        return self.request("GET", "/lab/checksum", vm=vm, disk=disk, snapshot=snapshot).decode().strip()

    def reset_cbt(self, vm):
        return json.loads(self.request("POST", "/lab/reset-cbt", vm=vm))

    def disks(self, vm):
        return json.loads(self.request("GET", "/lab/disks", vm=vm))
