# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Start and stop the repository key agent (repo/keyagent.py) for a play: started once, stopped at its end.

An agent started with ``stop_with_play`` also stops by itself as soon as the ansible-playbook process that started it
has ended (same machine): a play killed before its ``always`` section (an AWX job cancelled, SIGKILL) leaves no agent
behind holding keys until its idle timeout.
"""

from __future__ import annotations

import datetime
import os
import select
import signal
import threading
import time

from ..errors import ConfigurationError
from ..repo.keyagent import DEFAULT_IDLE, DEFAULT_TTL, SOCKET_DIRECTORY_PREFIX, KeyAgentClient, make_socket_path, serve
from .cancel import ansible_ancestors, process_ended

__all__ = ["start_agent", "stop_agent", "agent_state"]

# a fork and a bind: milliseconds, but a machine under heavy load may hold a new process back for seconds
_READY_TIMEOUT = 30.0
# how often an agent bound to its play looks whether the play's ansible-playbook process still runs
_WATCH_INTERVAL = 1.0


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


def _play_process():
    """(pid, start time) of the topmost ansible process above this module process (ansible-playbook, whose workers
    run the modules), or None when there is none on this machine (a module run over SSH, or under ``async``)."""
    chain = ansible_ancestors(os.getppid())
    return chain[-1] if chain else None


def _stop_when_ended(path, process):
    """Watch thread of an agent bound to its play: tell the agent to stop once ``process`` has ended."""
    while not process_ended(process):
        time.sleep(_WATCH_INTERVAL)
    try:
        KeyAgentClient(path).stop()
    except ConfigurationError:
        pass        # the agent stopped meanwhile (expired, idle, or told to): nothing left to stop


def _run_agent(path, ttl, idle, ready_fd, play_process=None):
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
        if play_process is not None:
            # started once the socket listens, so that its stop request always finds the agent
            threading.Thread(target=_stop_when_ended, args=(path, play_process), name="bv-agent-play", daemon=True).start()
        os.write(ready_fd, b"%d\n" % os.getpid())
        os.close(ready_fd)
        answered.append(True)

    try:
        serve(path, ttl=ttl, idle=idle, ready=ready)
    except Exception as exc:  # pylint: disable=broad-exception-caught  # told to the starter, which would wait for nothing
        if not answered:
            os.write(ready_fd, b"error %s\n" % str(exc).encode("utf-8", "replace").replace(b"\n", b" "))
        raise


def start_agent(socket_path=None, ttl=DEFAULT_TTL, idle=DEFAULT_IDLE, check=False, stop_with_play=False):
    """Start an agent, unless the one at ``socket_path`` runs; {changed, running, socket, pid, expires} and, for a new
    agent, ``stops_with_play``. A new agent's socket is in a fresh 0700 directory under $XDG_RUNTIME_DIR (else, or when
    that is too deep for a socket path, the temporary directory). An agent that cannot listen says why
    (ConfigurationError), at once. With ``stop_with_play``, a new agent also stops when the ansible-playbook process
    above this one has ended (``stops_with_play`` False when there is none on this machine: then only ttl and idle
    end it)."""
    if int(ttl) < 1 or int(idle) < 1:
        raise ConfigurationError("ttl and idle_timeout are seconds: give 1 or more.")
    current = agent_state(socket_path)
    if current["running"]:
        return dict(current, changed=False)
    if check:
        return {"changed": True, "running": False, "socket": socket_path}
    play_process = _play_process() if stop_with_play else None
    path = make_socket_path()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            _run_agent(path, int(ttl), int(idle), write_fd, play_process)
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
    return dict(agent_state(path), changed=True, stops_with_play=play_process is not None)


def stop_agent(socket_path, check=False):
    """Stop the agent at ``socket_path`` (its keys die with it); {changed, running: False, socket}. Returns once the
    agent has removed its socket and directory (it answers the stop before it leaves its loop), or after
    _READY_TIMEOUT seconds."""
    current = agent_state(socket_path)
    if current["running"] and not check:
        KeyAgentClient(socket_path).stop()
        # the socket, then the directory of its own that start_agent made for it (make_socket_path)
        own_directory = os.path.basename(os.path.dirname(socket_path)).startswith(SOCKET_DIRECTORY_PREFIX)
        deadline = time.monotonic() + _READY_TIMEOUT
        while (os.path.exists(socket_path) or (own_directory and os.path.exists(os.path.dirname(socket_path)))) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
    return {"changed": current["running"], "running": False, "socket": socket_path}
