# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A memory-only key agent: a play pays the passphrase's key derivation once, not in every task.

Opening an encrypted repository derives the key-encryption key from the passphrase with scrypt (0.25 to 1 s of
CPU, on purpose). A play of many tasks on the same repository would pay it in each. Like ssh-agent, the agent is a
process of the user's on the proxy that holds what it is given in memory only and answers on a Unix socket:

- the socket is in a fresh directory made mode 0700 (``mkdtemp``) and is itself 0600; every connection's peer is
  checked with SO_PEERCRED and must run as the agent's own user (root's peers: root only);
- it holds repository master keys by repository id, never writes them anywhere, refuses core dumps and ptrace by
  other processes (``PR_SET_DUMPABLE`` 0), and exits when its lifetime (``ttl``) has passed, when it has not been
  asked for ``idle`` seconds, or when told to stop; the keys die with the process;
- a key from the agent is used only after it authenticates the repository's configuration (its MAC), so a wrong or
  stale key is never used; a key is put into the agent only by a process that has just opened the repository with
  the passphrase or key file.

Protocol: one JSON object per line each way, ``{"op": "get", "repository": id}`` -> ``{"key": base64}`` or
``{"key": null}``; ``{"op": "put", "repository": id, "key": base64}`` -> ``{"ok": true}``; ``{"op": "stop"}`` ->
``{"ok": true}``; ``{"op": "info"}`` -> ``{"pid", "expires", "repositories"}`` (a count, never ids or keys).

Thread-safety: the server answers one connection at a time (a select loop); clients are one call each.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import socket
import struct
import tempfile
import time

from ..errors import ConfigurationError

__all__ = ["KeyAgentClient", "serve", "make_socket_path", "DEFAULT_TTL", "DEFAULT_IDLE", "SOCKET_DIRECTORY_PREFIX"]

#: the agent's lifetime by default: a long play or a change window, not a day
DEFAULT_TTL = 4 * 3600
DEFAULT_IDLE = 3600
_MAX_LINE = 4096
_TIMEOUT = 5.0
_PR_SET_DUMPABLE = 4


# A Unix socket's path holds at most 107 bytes (sun_path is 108 with its NUL); what make_socket_path adds to its
# parent directory: "/" + the prefix + mkdtemp's 8 random characters + "/agent.sock".
MAX_SOCKET_PATH = 107
SOCKET_DIRECTORY_PREFIX = "blockvault-agent-"
_SOCKET_NAME = "agent.sock"
_ADDED = len("/%s%s/%s" % (SOCKET_DIRECTORY_PREFIX, "x" * 8, _SOCKET_NAME))


def make_socket_path(directory=None):
    """A socket path in a fresh 0700 directory: under ``directory``, else $XDG_RUNTIME_DIR, else the temporary
    directory. An $XDG_RUNTIME_DIR too deep for a socket path (a test's or a container's tree) is passed over for the
    temporary directory; a ``directory`` too deep, or no parent short enough, is a ConfigurationError."""
    candidates = [directory] if directory else [os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir()]
    for parent in filter(None, candidates):
        if len(os.fsencode(os.path.abspath(parent))) + _ADDED <= MAX_SOCKET_PATH:
            return os.path.join(tempfile.mkdtemp(prefix=SOCKET_DIRECTORY_PREFIX, dir=parent), _SOCKET_NAME)
    raise ConfigurationError(
        "No directory short enough for the key agent's socket: a Unix socket path holds at most %d bytes, and %s "
        "would make it longer: set XDG_RUNTIME_DIR or TMPDIR to a shorter directory." % (
            MAX_SOCKET_PATH, " or ".join(repr(parent) for parent in filter(None, candidates))))


def _peer_uid(conn):
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _not_dumpable():
    """Keep the keys out of core files and away from other processes' ptrace (Linux; best effort elsewhere)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _answer(request, keys, state):
    op = request.get("op")
    if op == "get":
        key = keys.get(str(request.get("repository")))
        state["last_used"] = time.monotonic()
        return {"key": base64.b64encode(key).decode("ascii") if key is not None else None}
    if op == "put":
        key = base64.b64decode(str(request.get("key")), validate=True)
        if len(key) != 32:
            return {"error": "a repository key is 32 bytes"}
        keys[str(request.get("repository"))] = key
        state["last_used"] = time.monotonic()
        return {"ok": True}
    if op == "stop":
        state["stop"] = True
        return {"ok": True}
    if op == "info":
        return {"pid": os.getpid(), "expires": state["expires"], "repositories": len(keys)}
    return {"error": "unknown op %r" % (op,)}


def serve(path, ttl=DEFAULT_TTL, idle=DEFAULT_IDLE, ready=None):
    """Run the agent on the Unix socket ``path`` until it expires, idles out or is told to stop; then remove the
    socket and its directory. ``ready()`` is called once the socket listens."""
    _not_dumpable()
    keys = {}
    started = time.monotonic()
    state = {"last_used": started, "stop": False, "expires": time.time() + ttl}
    old_umask = os.umask(0o177)
    try:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
    finally:
        os.umask(old_umask)
    server.listen(8)
    server.settimeout(1.0)
    if ready is not None:
        ready()
    try:
        while not state["stop"]:
            now = time.monotonic()
            if now - started > ttl or now - state["last_used"] > idle:
                break
            try:
                conn, _address = server.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(_TIMEOUT)
                if _peer_uid(conn) != os.getuid():
                    continue            # another user: no answer at all
                try:
                    line = conn.makefile("rb").readline(_MAX_LINE)
                    reply = _answer(json.loads(line), keys, state)
                except (ValueError, OSError, TypeError, AttributeError) as exc:
                    reply = {"error": type(exc).__name__}
                try:
                    conn.sendall(json.dumps(reply).encode("ascii") + b"\n")
                except OSError:
                    pass
    finally:
        keys.clear()
        server.close()
        for remove, name in ((os.unlink, path), (os.rmdir, os.path.dirname(path))):
            try:
                remove(name)
            except OSError:
                pass


class KeyAgentClient:
    """Asks the agent at ``path``. Every failure to reach it is a ConfigurationError naming the socket (the run then
    says what to do: start the agent, or leave key_agent out to open with the passphrase). Stateless, thread-safe."""

    def __init__(self, path):
        if not path:
            raise ConfigurationError("key_agent is empty: give the socket the key agent task returned.")
        self.path = path

    def _call(self, request):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(_TIMEOUT)
                conn.connect(self.path)
                conn.sendall(json.dumps(request).encode("ascii") + b"\n")
                reply = json.loads(conn.makefile("rb").readline(_MAX_LINE) or b"{}")
        except (OSError, ValueError) as exc:
            raise ConfigurationError("The key agent at %s does not answer (%s): start it (backup_key_agent), or leave "
                                     "key_agent out to open the repository with its passphrase or key file."
                                     % (self.path, getattr(exc, "strerror", None) or type(exc).__name__)) from None
        if reply.get("error"):
            raise ConfigurationError("The key agent at %s refused the request: %s." % (self.path, reply["error"]))
        return reply

    def get(self, repository_id):
        """The master key the agent holds for ``repository_id``, or None."""
        key = self._call({"op": "get", "repository": repository_id}).get("key")
        return base64.b64decode(key) if key else None

    def put(self, repository_id, key):
        self._call({"op": "put", "repository": repository_id, "key": base64.b64encode(key).decode("ascii")})

    def info(self):
        return self._call({"op": "info"})

    def stop(self):
        self._call({"op": "stop"})
