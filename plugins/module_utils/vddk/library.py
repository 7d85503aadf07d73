# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding, loading and initialising libvixDiskLib (VDDK 6.7 to 9) through ctypes.

``initialize(libdir)`` loads the library once per process, declares every function's prototype, and calls
VixDiskLib_InitEx with log callbacks that feed the ``blockvault.vddk`` logger. Call it from the main thread before
worker threads use VDDK (VDDK's rule); later calls return the same ``VddkLibrary``. ``SERIAL_LOCK`` serializes the
calls VDDK forbids to run concurrently (ConnectEx, Disconnect, Open, Close, Create, PrepareForAccess, EndAccess,
Cleanup): Connection and DiskHandle take it, nobody else needs to.

Nothing here runs at import time.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import re
import threading

from ..errors import VddkError, VddkLoadError, redact
from . import structs as S
from .vixerror import error_for

__all__ = ["LIBRARY_NAMES", "SERIAL_LOCK", "VddkLibrary", "candidate_paths", "find_library", "load_library",
           "initialize", "current", "shutdown", "LOGGER"]

LOGGER = logging.getLogger("blockvault.vddk")

#: newest first; VDDK 9 ships only .so.9 (nbdkit's search order)
LIBRARY_NAMES = ("libvixDiskLib.so.9", "libvixDiskLib.so.8", "libvixDiskLib.so.7", "libvixDiskLib.so.6")

#: the API version handed to InitEx: every VDDK from 6.5 on accepts it
API_MAJOR, API_MINOR = 6, 5

#: process-wide lock for the VDDK calls that are not thread-safe
SERIAL_LOCK = threading.Lock()

_c = ctypes
_P = _c.POINTER
_VOIDPP = _P(_c.c_void_p)
_BUF = _P(_c.c_uint8)

# name: (restype, argtypes). Handles and connections are opaque pointers (c_void_p).
_REQUIRED = {
    "VixDiskLib_InitEx": (S.VixError, [_c.c_uint32, _c.c_uint32, S.LogFunc, S.LogFunc, S.LogFunc, _c.c_char_p, _c.c_char_p]),
    "VixDiskLib_Exit": (None, []),
    "VixDiskLib_GetErrorText": (_c.c_void_p, [S.VixError, _c.c_char_p]),   # char*, freed by FreeErrorText
    "VixDiskLib_FreeErrorText": (None, [_c.c_void_p]),
    "VixDiskLib_ConnectEx": (S.VixError, [_P(S.ConnectParams), _c.c_char, _c.c_char_p, _c.c_char_p, _VOIDPP]),
    "VixDiskLib_Disconnect": (S.VixError, [_c.c_void_p]),
    "VixDiskLib_Open": (S.VixError, [_c.c_void_p, _c.c_char_p, _c.c_uint32, _VOIDPP]),
    "VixDiskLib_Close": (S.VixError, [_c.c_void_p]),
    "VixDiskLib_GetInfo": (S.VixError, [_c.c_void_p, _P(_P(S.Info))]),
    "VixDiskLib_FreeInfo": (None, [_P(S.Info)]),
    "VixDiskLib_Read": (S.VixError, [_c.c_void_p, S.SectorType, S.SectorType, _BUF]),
    "VixDiskLib_Write": (S.VixError, [_c.c_void_p, S.SectorType, S.SectorType, _BUF]),
    "VixDiskLib_Flush": (S.VixError, [_c.c_void_p]),
    "VixDiskLib_Create": (S.VixError, [_c.c_void_p, _c.c_char_p, _P(S.CreateParams), S.ProgressFunc, _c.c_void_p]),
    "VixDiskLib_GetTransportMode": (_c.c_char_p, [_c.c_void_p]),
    "VixDiskLib_FreeConnectParams": (None, [_P(S.ConnectParams)]),
}

# Missing ones mean "feature absent" (older VDDK), never a load failure.
_OPTIONAL = {
    "VixDiskLib_QueryAllocatedBlocks": (S.VixError, [_c.c_void_p, S.SectorType, S.SectorType, S.SectorType,
                                                     _P(_P(S.BlockList))]),
    "VixDiskLib_FreeBlockList": (S.VixError, [_P(S.BlockList)]),
    "VixDiskLib_AllocateConnectParams": (_P(S.ConnectParams), []),
    "VixDiskLib_PrepareForAccess": (S.VixError, [_P(S.ConnectParams), _c.c_char_p]),
    "VixDiskLib_EndAccess": (S.VixError, [_P(S.ConnectParams), _c.c_char_p]),
    "VixDiskLib_Cleanup": (S.VixError, [_P(S.ConnectParams), _P(_c.c_uint32), _P(_c.c_uint32)]),
    "VixDiskLib_ReadAsync": (S.VixError, [_c.c_void_p, S.SectorType, S.SectorType, _BUF, S.CompletionFunc, _c.c_void_p]),
    "VixDiskLib_WriteAsync": (S.VixError, [_c.c_void_p, S.SectorType, S.SectorType, _BUF, S.CompletionFunc, _c.c_void_p]),
    "VixDiskLib_Wait": (S.VixError, [_c.c_void_p]),
    # informational only (nbdkit never calls it, and its test library lacks it)
    "VixDiskLib_ListTransportModes": (_c.c_char_p, []),
}


def candidate_paths(libdir):
    """The files tried, in order: LIBDIR/lib64/libvixDiskLib.so.{9,8,7,6}, then the same in LIBDIR/."""
    return [os.path.join(libdir, sub, name) if sub else os.path.join(libdir, name)
            for sub in ("lib64", "") for name in LIBRARY_NAMES]


def find_library(libdir):
    """The path of the newest libvixDiskLib in ``libdir``; VddkLoadError naming what was tried otherwise."""
    if not libdir or not os.path.isdir(libdir):
        raise VddkLoadError(
            "The VDDK directory %r does not exist or is not a directory." % (libdir,),
            hint="Extract VMware's VDDK tarball (VMware-vix-disklib-*.tar.gz) and pass the directory that holds "
                 "lib64/ (for example /opt/vmware-vix-disklib-distrib) as the VDDK directory.")
    tried = candidate_paths(libdir)
    for path in tried:
        if os.path.isfile(path):
            return path
    raise VddkLoadError(
        "No VDDK library in %s: tried %s." % (libdir, ", ".join(tried)),
        hint="Pass the directory of an extracted VDDK 6.7 to 9 (the one that contains lib64/libvixDiskLib.so.N).")


def _missing_dependency(reason):
    """The file name dlopen could not find ('libfoo.so.1: cannot open shared object file: ...'), or None."""
    match = re.match(r"^(.*?): cannot open shared object file", reason)
    return os.path.basename(match.group(1)) if match else None


def _load_with_bundled(path, reason):
    """Load ``path`` after preloading, RTLD_GLOBAL, exactly the missing libraries VDDK bundles next to it.

    Follows the chain of missing dependencies (a bundled library may miss another one); gives up when a missing
    library is not in the directory. Returns (CDLL or None, last dlopen error).
    """
    libdir = os.path.dirname(path)
    stack = [path]
    for _attempt in range(64):
        missing = _missing_dependency(reason)
        candidate = os.path.join(libdir, missing) if missing else None
        if not candidate or candidate in stack or not os.path.isfile(candidate):
            return None, reason
        stack.append(candidate)
        while stack:
            target = stack[-1]
            mode = os.RTLD_NOW if target == path else os.RTLD_NOW | os.RTLD_GLOBAL
            try:
                cdll = ctypes.CDLL(target, mode=mode)
            except OSError as exc:
                reason = str(exc)
                break
            stack.pop()
            if target == path:
                return cdll, None
    return None, reason


def load_library(libdir):
    """(ctypes.CDLL, path) of the VDDK library in ``libdir``, loaded RTLD_NOW. Does not call InitEx."""
    path = find_library(libdir)
    try:
        return ctypes.CDLL(path, mode=os.RTLD_NOW), path
    except OSError as first:
        reason = str(first)
    missing = _missing_dependency(reason)
    if missing and missing != os.path.basename(path):
        cdll, reason = _load_with_bundled(path, reason)
        if cdll is not None:
            return cdll, path
        raise VddkLoadError(
            "Cannot load %s: a library it needs is missing (%s)." % (path, reason),
            hint="VDDK bundles its own libraries in %s; extract the whole VDDK tarball there (or start with "
                 "LD_LIBRARY_PATH=%s), and install the system libraries the VDDK release notes list."
                 % (os.path.dirname(path), os.path.dirname(path)))
    raise VddkLoadError("Cannot load %s: %s." % (path, reason),
                        hint="Check that it is an x86_64 VDDK 6.7 to 9 library and that the file is complete.")


def _declare(cdll, path):
    missing = []
    for name, (restype, argtypes) in _REQUIRED.items():
        try:
            func = getattr(cdll, name)
        except AttributeError:
            missing.append(name)
            continue
        func.restype, func.argtypes = restype, argtypes
    if missing:
        raise VddkLoadError("%s lacks required VDDK functions: %s." % (path, ", ".join(missing)),
                            hint="Use VDDK 6.7 or later.")
    available = set()
    for name, (restype, argtypes) in _OPTIONAL.items():
        func = getattr(cdll, name, None)
        if func is not None:
            func.restype, func.argtypes = restype, argtypes
            available.add(name)
    return available


class _LogBridge:
    """VDDK log callbacks -> the blockvault.vddk logger, formatted by libc's vsnprintf, secrets redacted.

    Thread-safe (VDDK calls them from any thread). Created once per process and never freed: VDDK keeps the
    function pointers until the process exits.
    """

    BUFFER_SIZE = 8192          # a va_list can be consumed only once: one large buffer, longer text truncated

    def __init__(self):
        libc = ctypes.CDLL(None)
        self._vsnprintf = libc.vsnprintf
        self._vsnprintf.restype = ctypes.c_int
        self._vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
        self.log = S.LogFunc(self._make(logging.DEBUG))
        self.warn = S.LogFunc(self._make(logging.WARNING))
        self.panic = S.LogFunc(self._make(logging.CRITICAL))

    def _make(self, level):
        def callback(fmt, va_list):
            try:
                buf = ctypes.create_string_buffer(self.BUFFER_SIZE)
                self._vsnprintf(buf, self.BUFFER_SIZE, fmt, va_list)
                text = buf.value.decode("utf-8", "replace").rstrip()
                if text:
                    LOGGER.log(level, "%s", redact(text))
            except Exception:      # an exception must never unwind into C
                pass
        return callback


class VddkLibrary:
    """An initialised libvixDiskLib: the CDLL with declared prototypes plus what the build offers.

    Thread-safe for what VDDK allows (see the module docstring); obtain it with ``initialize``.
    """

    def __init__(self, cdll, path, libdir, optional):
        self.cdll = cdll
        self.path = path
        self.libdir = libdir
        self.optional = frozenset(optional)
        self.pid = os.getpid()

    def has(self, name):
        """True when the optional function ``VixDiskLib_<name>`` exists in this VDDK."""
        return ("VixDiskLib_" + name) in self.optional

    def fn(self, name):
        return getattr(self.cdll, "VixDiskLib_" + name)

    def error_text(self, err):
        ptr = self.cdll.VixDiskLib_GetErrorText(err, None)
        if not ptr:
            return None
        try:
            return ctypes.string_at(ptr).decode("utf-8", "replace").strip()
        finally:
            self.cdll.VixDiskLib_FreeErrorText(ptr)

    def check_process(self):
        if os.getpid() != self.pid:
            raise VddkError("VDDK was initialised in process %d and cannot be used in process %d, forked after it."
                            % (self.pid, os.getpid()),
                            hint="Initialise VDDK in the process that uses it (after any fork).")

    def check(self, err, function, context=None):
        """Raise the engine's exception for a failed VixError ``err``; return normally when it is VIX_OK."""
        if err:
            raise error_for(err, self.error_text(err), "VixDiskLib_" + function, context)

    def transport_modes(self):
        """The modes this VDDK offers ("file:san:hotadd:nbdssl:nbd"), or None when it lacks ListTransportModes."""
        if not self.has("ListTransportModes"):
            return None
        modes = self.cdll.VixDiskLib_ListTransportModes()
        return modes.decode() if modes else ""


_STATE = {"library": None, "bridge": None}
_INIT_LOCK = threading.Lock()


def initialize(libdir, config_file=None):
    """Load and InitEx VDDK from ``libdir`` once per process; later calls return the same library.

    Raises VddkLoadError when the library is missing or unloadable, ConfigurationError-derived VddkLoadError when
    called again with another directory, VddkError when InitEx fails.
    """
    libdir = os.path.abspath(libdir) if libdir else libdir
    with _INIT_LOCK:
        library = _STATE["library"]
        if library is not None:
            library.check_process()
            if library.libdir != libdir:
                raise VddkLoadError("VDDK is already initialised from %s in this process; it cannot also be loaded "
                                    "from %s." % (library.libdir, libdir),
                                    hint="Use one VDDK directory per run.")
            return library
        cdll, path = load_library(libdir)
        optional = _declare(cdll, path)
        bridge = _STATE["bridge"] or _LogBridge()
        _STATE["bridge"] = bridge       # kept for the process lifetime: VDDK holds the callback pointers
        err = cdll.VixDiskLib_InitEx(API_MAJOR, API_MINOR, bridge.log, bridge.warn, bridge.panic,
                                     os.fsencode(libdir), os.fsencode(config_file) if config_file else None)
        library = VddkLibrary(cdll, path, libdir, optional)
        library.check(err, "InitEx", libdir)
        LOGGER.debug("VDDK loaded from %s (optional functions: %s)", path, ", ".join(sorted(optional)) or "none")
        _STATE["library"] = library
        atexit.register(shutdown)
        return library


def current():
    """The initialised library, or None."""
    return _STATE["library"]


def shutdown():
    """VixDiskLib_Exit, once, in the initialising process (registered with atexit by ``initialize``)."""
    with _INIT_LOCK:
        library = _STATE["library"]
        if library is None or library.pid != os.getpid():
            return
        _STATE["library"] = None
        with SERIAL_LOCK:
            library.cdll.VixDiskLib_Exit()
