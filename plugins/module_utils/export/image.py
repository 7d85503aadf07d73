# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk images from an export: ``qemu-img convert`` reading the NBD URI, writing qcow2 or VMDK.

qemu-img asks the export for block status, so zero chunks are never read nor written: a qcow2 is sparse, a VMDK
holds only grains with data. The bytes it reads are the repository's, each chunk verified by the export.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

from ..errors import ConfigurationError, ExportError, MissingDependencyError

__all__ = ["ImageFormat", "IMAGE_FORMATS", "VMDK_SUBFORMATS", "convert_image"]

IMAGE_FORMATS = ("raw", "qcow2", "vmdk")
#: streamOptimized: what vSphere imports (OVF/OVA, ovftool, content libraries); monolithicSparse: Workstation, qemu
VMDK_SUBFORMATS = ("streamOptimized", "monolithicSparse")


@dataclasses.dataclass(frozen=True)
class ImageFormat:
    """The format of a disk image file: ``name`` raw, qcow2 or vmdk; ``vmdk_subformat`` for vmdk (default
    streamOptimized). Immutable; checked when built."""

    name: str = "raw"
    vmdk_subformat: str = None

    def __post_init__(self):
        if self.name not in IMAGE_FORMATS:
            raise ConfigurationError("format %r: use one of %s." % (self.name, ", ".join(IMAGE_FORMATS)))
        if self.vmdk_subformat is not None and self.name != "vmdk":
            raise ConfigurationError("vmdk_subformat applies to format vmdk only, not to %s." % self.name)
        if self.name == "vmdk":
            subformat = self.vmdk_subformat or "streamOptimized"
            if subformat not in VMDK_SUBFORMATS:
                raise ConfigurationError("vmdk_subformat %r: use one of %s." % (subformat, ", ".join(VMDK_SUBFORMATS)))
            object.__setattr__(self, "vmdk_subformat", subformat)

    def qemu_img_args(self):
        args = ["-O", self.name]
        if self.name == "vmdk":
            args += ["-o", "subformat=%s" % self.vmdk_subformat]
        return args

    def describe(self):
        return self.name if self.name != "vmdk" else "vmdk (%s)" % self.vmdk_subformat


def convert_image(uri, path, image_format, timeout=None):
    """Write the disk the NBD ``uri`` serves to ``path`` in ``image_format`` (an ImageFormat) with qemu-img."""
    if shutil.which("qemu-img") is None:
        raise MissingDependencyError("qemu-img is not installed: install the Debian package qemu-utils (make install "
                                     "does).", library="qemu-img")
    command = ["qemu-img", "convert", "-q", "-f", "raw"] + image_format.qemu_img_args() + [uri, path]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip()[-2000:]
        raise ExportError("qemu-img could not write %s as %s: %s" % (path, image_format.describe(), message))
