# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load libguestfs's Python binding (Debian's python3-guestfs) into the product's Python.

Why the binding rather than the CLIs (guestfish, virt-ls, virt-copy-out): the appliance start is the whole cost of
a file-level restore (tens of seconds under TCG), and one handle serves inspection, listing and copy-out with one
start, returning typed values instead of text to parse. Why it is loaded this way: Debian builds the binding for its
own python3 (3.11 on Debian 12) into /usr/lib/python3/dist-packages, and the product runs from its venv's Python.
The extension module depends on the CPython minor version only (its ABI tag, e.g. cpython-311), so the venv's 3.11
can load it; but putting dist-packages on sys.path would let Debian's other packages shadow the venv's pinned ones.
So exactly two files are loaded by location: ``libguestfsmod<EXT_SUFFIX>`` and ``guestfs.py``. A Python of another
minor version finds no extension with its suffix and gets a MissingDependencyError that says so.

Thread-safety: ``load`` may be called from any thread (a lock guards the one-time import).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
import threading

from ..errors import MissingDependencyError

__all__ = ["load", "SEARCH_PATH_ENV"]

#: directories (os.pathsep-separated) searched before Debian's for guestfs.py and libguestfsmod
SEARCH_PATH_ENV = "BLOCKVAULT_GUESTFS_PYTHONPATH"
SYSTEM_DIRS = ("/usr/lib/python3/dist-packages", "/usr/lib64/python%d.%d/site-packages" % sys.version_info[:2],
               "/usr/lib/python%d.%d/site-packages" % sys.version_info[:2])

_lock = threading.Lock()


def _from_file(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # guestfs.py does "import libguestfsmod": it must be in sys.modules before guestfs.py runs
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load():
    """The ``guestfs`` module (libguestfs's binding); MissingDependencyError when it cannot be loaded."""
    with _lock:
        if "guestfs" in sys.modules:
            return sys.modules["guestfs"]
        try:
            import guestfs  # pylint: disable=import-outside-toplevel  # a binding installed in the venv itself wins
            return guestfs
        except ImportError:
            pass
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        extra = [d for d in os.environ.get(SEARCH_PATH_ENV, "").split(os.pathsep) if d]
        for directory in extra + list(SYSTEM_DIRS):
            extension = os.path.join(directory, "libguestfsmod" + suffix)
            wrapper = os.path.join(directory, "guestfs.py")
            if os.path.isfile(extension) and os.path.isfile(wrapper):
                try:
                    if "libguestfsmod" not in sys.modules:
                        _from_file("libguestfsmod", extension)
                    return _from_file("guestfs", wrapper)
                except ImportError as exc:
                    raise MissingDependencyError(
                        "libguestfs's Python binding in %s does not load into this Python %d.%d: %s."
                        % (directory, sys.version_info[0], sys.version_info[1], exc), library="guestfs") from exc
        raise MissingDependencyError(
            "File-level restore needs libguestfs and its Python binding for this Python (%d.%d, extension suffix %s): "
            "on Debian 12 install libguestfs-tools, python3-guestfs and linux-image-amd64 (make install does), or "
            "set %s to a directory holding guestfs.py and libguestfsmod%s."
            % (sys.version_info[0], sys.version_info[1], suffix, SEARCH_PATH_ENV, suffix), library="guestfs")
