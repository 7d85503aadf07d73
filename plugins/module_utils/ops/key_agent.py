# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start and stop the repository key agent (repo/keyagent.py) for a play: started once, stopped at its end."""

from __future__ import annotations

import datetime
import os
import select
import signal

from ..errors import ConfigurationError
from ..repo.keyagent import DEFAULT_IDLE, DEFAULT_TTL, KeyAgentClient, make_socket_path, serve

__all__ = ["start_agent", "stop_agent", "agent_state"]

_READY_TIMEOUT = 10.0


def _iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def agent_state(path):
    """{running, socket, pid, expires} of the agent at ``path`` (running False when nothing answers there)."""
    if not path or not os.path.exists(path):
        return {"running": False, "socket": path}
    try:
        info = KeyAgentClient(path).info()
    except ConfigurationError:
        return {"running": False, "socket": path}
    return {"running": True, "socket": path, "pid": info["pid"], "expires": _iso(info["expires"])}


def _run_agent(path, ttl, idle, ready_fd):
    """The agent process: a session of its own, no terminal, default signal dispositions, then serve()."""
    os.setsid()
    if os.fork() > 0:
        os._exit(0)     # pylint: disable=protected-access  # the intermediate child: the agent is re-parented to init
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(number, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)

    answered = []

    def ready():
        os.write(ready_fd, b"%d\n" % os.getpid())
        os.close(ready_fd)
        answered.append(True)

    try:
        serve(path, ttl=ttl, idle=idle, ready=ready)
    except Exception as exc:  # pylint: disable=broad-exception-caught  # told to the starter, which would wait for nothing
        if not answered:
            os.write(ready_fd, b"error %s\n" % str(exc).encode("utf-8", "replace").replace(b"\n", b" "))
        raise


def start_agent(socket_path=None, ttl=DEFAULT_TTL, idle=DEFAULT_IDLE, check=False):
    """Start an agent, unless the one at ``socket_path`` runs; {changed, running, socket, pid, expires}. A new agent's
    socket is in a fresh 0700 directory under $XDG_RUNTIME_DIR (else, or when that is too deep for a socket path, the
    temporary directory). An agent that cannot listen says why (ConfigurationError), at once."""
    if int(ttl) < 1 or int(idle) < 1:
        raise ConfigurationError("ttl and idle_timeout are seconds: give 1 or more.")
    current = agent_state(socket_path)
    if current["running"]:
        return dict(current, changed=False)
    if check:
        return {"changed": True, "running": False, "socket": socket_path}
    path = make_socket_path()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            _run_agent(path, int(ttl), int(idle), write_fd)
        finally:
            os._exit(0)     # pylint: disable=protected-access  # never return into the module in the child
    os.close(write_fd)
    os.waitpid(pid, 0)
    with os.fdopen(read_fd, "rb") as ready:
        answered = select.select([ready], [], [], _READY_TIMEOUT)[0]
        line = ready.readline() if answered else b""
    if not line.strip() or line.startswith(b"error "):
        # its directory goes too: an agent that comes up late cannot bind there any more, and nothing is left behind
        try:
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass
        if line.strip():
            raise ConfigurationError("The key agent could not listen on %s: %s" % (
                path, line[len(b"error "):].decode("utf-8", "replace").strip()))
        raise ConfigurationError("The key agent did not start within %d s (socket %s)." % (_READY_TIMEOUT, path))
    return dict(agent_state(path), changed=True)


def stop_agent(socket_path, check=False):
    """Stop the agent at ``socket_path`` (its keys die with it); {changed, running: False, socket}."""
    current = agent_state(socket_path)
    if current["running"] and not check:
        KeyAgentClient(socket_path).stop()
    return {"changed": current["running"], "running": False, "socket": socket_path}
