"""An HTTP proxy in front of the lab: Debian's tinyproxy (package tinyproxy-bin), as a site's outbound proxy would be.

``HttpProxy(connect_ports)`` starts tinyproxy in the foreground on a free port of 127.0.0.1, allowing clients from
127.0.0.1 only and CONNECT only to the ports in ``connect_ports`` (a proxy that refuses the tunnel is a test case
too). ``connects()`` reads tinyproxy's own log and returns the ``host:port`` of every CONNECT asked of it, so a test
sees that a client really went through the proxy. A context manager: ``stop()`` ends tinyproxy.

Thread-safety: one test drives it; ``connects()`` only reads the log file.
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from .children import ends_with_this_process

__all__ = ["HttpProxy"]

# tinyproxy 1.11 logs "Request (file descriptor 6): CONNECT 127.0.0.1:443 HTTP/1.1" for each CONNECT asked for
_CONNECT_LINE = re.compile(r"Request \(file descriptor \d+\): CONNECT (\S+) HTTP/1\.[01]")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class HttpProxy:
    """tinyproxy on 127.0.0.1:``port``; see the module docstring."""

    def __init__(self, connect_ports, start_timeout=15.0):
        program = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        if not os.path.exists(program):
            raise RuntimeError("tinyproxy is not installed: `make install` installs Debian's tinyproxy-bin")
        self.port = _free_port()
        self._dir = tempfile.mkdtemp(prefix="lab-httpproxy-")
        self.log_path = os.path.join(self._dir, "tinyproxy.log")
        config = os.path.join(self._dir, "tinyproxy.conf")
        with open(config, "w") as handle:
            handle.write("Port %d\nListen 127.0.0.1\nTimeout 120\nMaxClients 50\nAllow 127.0.0.1\n"
                         "LogFile \"%s\"\nLogLevel Connect\nPidFile \"%s\"\n"
                         % (self.port, self.log_path, os.path.join(self._dir, "tinyproxy.pid")))
            for port in connect_ports:
                handle.write("ConnectPort %d\n" % int(port))
        self._process = subprocess.Popen([program, "-d", "-c", config], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, preexec_fn=ends_with_this_process())
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("tinyproxy did not start listening on 127.0.0.1:%d" % self.port) from None
                time.sleep(0.05)

    def connects(self):
        """``host:port`` of each CONNECT asked of tinyproxy (allowed or not), oldest first."""
        try:
            with open(self.log_path, errors="replace") as handle:
                return _CONNECT_LINE.findall(handle.read())
        except FileNotFoundError:
            return []

    def stop(self):
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
