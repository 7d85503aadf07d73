# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a benchmark script reaches the collection and the lab's helpers: import it before either.

``import benchpath`` puts build/collections (where ``ansible_collections.blockvault.vsphere`` is found) and
tests/lab (``labkit``) on sys.path and makes the collection link there if the Makefile has not made it yet, so a
script runs the same from ``make bench`` or by hand. Importing it twice does nothing more.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, "build", "collections")
LAB = os.path.join(ROOT, "tests", "lab")


def link_collection():
    """Make ``ansible_collections.blockvault.vsphere`` importable: the link the Makefile makes, and the path."""
    link = os.path.join(COLLECTIONS, "ansible_collections", "blockvault", "vsphere")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(ROOT, os.path.dirname(link)), link)
    for path in (LAB, COLLECTIONS):
        if path not in sys.path:
            sys.path.insert(0, path)


link_collection()
