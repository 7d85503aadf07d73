# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Starting and stopping nbdkit: one process per exported disk, running nbd_plugin.py in nbdkit's Python plugin.

Why a private copy of the collection: nbdkit's Python plugin embeds Debian's /usr/bin/python3 (3.11), not the
project's venv, and an Ansible module runs from a temporary payload deleted when it returns, while the export
outlives it. So ``prepare_runtime`` copies this package tree (plugins/module_utils, from wherever it is imported:
a checkout or the module's zip) into the export's private directory, and nbdkit gets a PYTHONPATH of that copy and
the running interpreter's site-packages (the venv's cryptography, zstandard, boto3: the same CPython 3.11 ABI).

Secrets: the repository's settings (passphrase, S3 keys) go to the plugin through an inherited pipe, read and
closed by the plugin before it serves: never on a command line, in the environment or in a file.

nbdkit runs in the foreground of its own session (``-f``, ``setsid``) so that the plugin's lock heartbeat thread
runs in the serving process and an Ansible run's process group ending does not stop it; ``-P`` writes its pid
file once it listens, which is when ``start`` returns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import importlib.resources
import json
import os
import shutil
import signal
import subprocess
import sysconfig
import time

from .. import errors as error_tree
from ..errors import ExportError, MissingDependencyError
from . import nbd_plugin
from .listen import Listen

__all__ = ["ServerLaunch", "RunningServer", "prepare_runtime", "start_server", "stop_server", "server_alive", "NBDKIT"]

NBDKIT = "nbdkit"
# imported (not only named) because AnsiballZ packs the module_utils a module imports, and nbdkit runs this file
PLUGIN_SCRIPT = nbd_plugin.__name__.rsplit(".", 1)[1] + ".py"
#: seconds nbdkit may take to open the repository, take the lock and listen (an S3 repository is slower)
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
_PACKAGE = __name__.rsplit(".", 2)[0]           # ansible_collections.blockvault.vsphere.plugins.module_utils


@dataclasses.dataclass(frozen=True)
class ServerLaunch:
    """One nbdkit to start: disk ``disk`` (a key) of restore point ``restore_point``, the ``position``-th disk of
    export ``name``, listening as ``listen`` says, with the cow filter when ``writable``; its files under
    ``runtime_dir``; ``repository``: the RepositorySettings the plugin opens; ``exit_with_parent``: nbdkit ends
    with the process that starts it (an export held by a context manager). Immutable (thread-safe)."""

    name: str
    restore_point: str
    disk: str
    position: int
    listen: Listen
    writable: bool
    runtime_dir: str
    repository: object
    exit_with_parent: bool = False

    def path(self, suffix):
        return os.path.join(self.runtime_dir, "disk-%s.%s" % (self.disk, suffix))


@dataclasses.dataclass(frozen=True)
class RunningServer:
    """An nbdkit that serves: its ``pid``, the ``uri`` clients use and the Unix ``socket`` (None for TCP). Immutable."""

    pid: int
    uri: str
    socket: str = None


def _copy_tree(source, destination):
    os.makedirs(destination, mode=0o700, exist_ok=True)
    for item in source.iterdir():
        if item.is_dir():
            if item.name != "__pycache__":
                _copy_tree(item, os.path.join(destination, item.name))
        elif item.name.endswith(".py"):
            with open(os.path.join(destination, item.name), "wb") as handle:
                handle.write(item.read_bytes())


def prepare_runtime(runtime_dir):
    """Copy the collection's module_utils into ``runtime_dir``/lib; the PYTHONPATH nbdkit's plugin needs."""
    lib = os.path.join(runtime_dir, "lib")
    _copy_tree(importlib.resources.files(_PACKAGE), os.path.join(lib, *_PACKAGE.split(".")))
    paths = [lib] + [path for path in dict.fromkeys((sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]))
                     if os.path.isdir(path)]
    return os.pathsep.join(paths)


def _command(launch, pythonpath):
    script = os.path.join(pythonpath.split(os.pathsep)[0], *_PACKAGE.split(".") + ["export", PLUGIN_SCRIPT])
    command = [NBDKIT, "-f", "-P", launch.path("pid"), "--threads", "16"]
    command += launch.listen.nbdkit_args(launch.path("sock"), launch.position)
    if launch.exit_with_parent:
        command.append("--exit-with-parent")
    if launch.writable:
        command.append("--filter=cow")      # writes go to the cow filter's overlay in TMPDIR, never to the plugin
    else:
        command.append("-r")
    command += ["python", script, "export_id=%s" % launch.name, "error_file=%s" % launch.path("error")]
    if launch.exit_with_parent:
        return command
    # Debian's nbdkit 1.32 arms PR_SET_PDEATHSIG (SIGTERM) itself, even without --exit-with-parent (seen with
    # strace), so an nbdkit whose parent exits stops. An export that outlives the module gets a parent that lives
    # exactly as long as it: a shell that waits for it.
    return ["sh", "-c", '"$@" & wait', "sh"] + command


def _start_failure(launch, process):
    """The typed error of an nbdkit that exited before it served (the plugin's report, else nbdkit's own log)."""
    try:
        with open(launch.path("error"), encoding="utf-8") as handle:
            report = json.load(handle)
        kind = getattr(error_tree, report.get("error_class", ""), ExportError)
        if not (isinstance(kind, type) and issubclass(kind, error_tree.BlockvaultError)):
            kind = ExportError
        return kind("Export %s of disk %s: %s" % (launch.name, launch.disk, report.get("message")))
    except (OSError, ValueError):
        pass
    with contextlib.suppress(OSError), open(launch.path("log"), encoding="utf-8", errors="replace") as handle:
        tail = handle.read()[-2000:].strip()
        return ExportError("nbdkit for disk %s of export %s exited with status %s before serving: %s" % (
            launch.disk, launch.name, process.returncode, tail or "no message"))
    return ExportError("nbdkit for disk %s of export %s exited with status %s before serving." % (
        launch.disk, launch.name, process.returncode))


def start_server(launch, pythonpath):
    """Start nbdkit for ``launch`` (ServerLaunch); the RunningServer once it listens, or the typed start failure."""
    if shutil.which(NBDKIT) is None:
        raise MissingDependencyError("nbdkit is not installed: install the Debian packages nbdkit and "
                                     "nbdkit-plugin-python (make install does).", library="nbdkit")
    spec = {"name": launch.name, "restore_point": launch.restore_point, "disk": launch.disk,
            "repository": dataclasses.asdict(launch.repository)}
    read_end, write_end = os.pipe()
    environ = dict(os.environ, PYTHONPATH=pythonpath, TMPDIR=launch.runtime_dir, PYTHONDONTWRITEBYTECODE="1")
    try:
        with open(launch.path("log"), "ab") as log:
            command = _command(launch, pythonpath) + ["spec_fd=%d" % read_end]
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=environ,  # pylint: disable=consider-using-with
                                       pass_fds=(read_end,), start_new_session=True, cwd=launch.runtime_dir)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    with os.fdopen(write_end, "wb") as pipe:
        with contextlib.suppress(BrokenPipeError):
            pipe.write(json.dumps(spec).encode("utf-8"))
    deadline = time.monotonic() + START_TIMEOUT
    while _read_pid(launch.path("pid")) is None:
        try:
            process.wait(timeout=0.05)      # returns only when nbdkit exited: it failed to start
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                _kill(process.pid)
                raise ExportError("nbdkit for disk %s of export %s did not listen within %d s (see %s)." % (
                    launch.disk, launch.name, START_TIMEOUT, launch.path("log"))) from None
            continue
        raise _start_failure(launch, process)
    socket = launch.path("sock") if launch.listen.kind == "unix" else None
    # nbdkit's own pid (it may be the waiting shell's child): what a stop signals and a liveness check reads
    return RunningServer(pid=_read_pid(launch.path("pid")), uri=launch.listen.uri(socket, launch.position), socket=socket)


def _read_pid(path):
    """The pid nbdkit wrote to ``path`` once it listens; None while the file is absent or not complete."""
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") and text.strip().isdigit() else None


def server_alive(pid, runtime_dir):
    """True when ``pid`` is an nbdkit of the export whose files are in ``runtime_dir`` (not a reused pid, no zombie)."""
    if not pid:
        return False
    _reap(pid)
    try:
        with open("/proc/%d/cmdline" % int(pid), "rb") as handle:
            arguments = handle.read().split(b"\0")
        with open("/proc/%d/stat" % int(pid), "rb") as handle:
            status = handle.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return False
    return status != b"Z" and bool(arguments) and os.path.basename(arguments[0]) == b"nbdkit" and any(
        argument.startswith(os.fsencode(runtime_dir + os.sep)) for argument in arguments)


def _reap(pid):
    """Collect ``pid`` when it is this process's child (a test, a context manager): a zombie is no server."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(int(pid), os.WNOHANG)


def _kill(pid, sig=signal.SIGKILL):
    try:
        os.kill(int(pid), sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def stop_server(pid, runtime_dir):
    """Stop nbdkit ``pid`` (SIGTERM: the plugin releases its lock; SIGKILL after STOP_TIMEOUT). True if it ran."""
    if not server_alive(pid, runtime_dir):
        return False
    _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while server_alive(pid, runtime_dir):
        if time.monotonic() > deadline:
            _kill(pid)
            deadline = time.monotonic() + STOP_TIMEOUT
        time.sleep(0.02)
    return True
