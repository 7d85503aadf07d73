"""Test-wide setup: make the collection importable as ansible_collections.blockvault.vsphere."""
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
_LINK = ROOT / "build" / "collections" / "ansible_collections" / "blockvault" / "vsphere"
if not _LINK.exists():
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(ROOT, _LINK.parent), _LINK)
