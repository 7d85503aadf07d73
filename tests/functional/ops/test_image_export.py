"""Image exports: vm_restore target=file as qcow2 or VMDK (qemu-img reading a private export of the restore point),
checked by qemu-img itself (check, compare) against the product's raw restore of the same restore point."""
import json
import os
import subprocess

import pytest

from opslab import ops_export, ops_restore  # pylint: disable=import-error
from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("image_format", [ops_restore.ImageFormat("qcow2"), ops_restore.ImageFormat("vmdk"),
                                          ops_restore.ImageFormat("vmdk", "monolithicSparse")],
                         ids=["qcow2", "vmdk-streamOptimized", "vmdk-monolithicSparse"])
def test_image_exports_pass_qemu_img_check_and_compare_equal_to_the_raw_restore(env, tmp_path, image_format):
    backed_up = env.backup("lab-vm1")
    rp_id, key = backed_up["restore_point"]["id"], backed_up["disks"][0]["key"]
    raw = env.restore_file(rp_id, key)
    image = tmp_path / "disk.image"
    result = env.restore(rp_id, ops_restore.File(path=str(image), disk=key, image_format=image_format))
    assert result["format"] == image_format.describe() and not os.path.exists(str(image) + ".partial")
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(image)], check=True, capture_output=True,
                                     text=True, timeout=60).stdout)
    assert info["format"] == image_format.name and info["virtual-size"] == os.path.getsize(raw)
    if image_format.name == "vmdk":
        assert info["format-specific"]["data"]["create-type"] == image_format.vmdk_subformat
    subprocess.run(["qemu-img", "check", str(image)], check=True, capture_output=True, timeout=120)
    subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", image_format.name, str(raw), str(image)], check=True,
                   capture_output=True, timeout=300)
    if image_format.name == "qcow2":        # sparse: the holes take no clusters
        assert info["actual-size"] < os.path.getsize(raw)
    assert ops_export.list_exports()["exports"] == []       # the private export stopped with the restore


def test_a_bad_image_format_or_subformat_is_refused_by_name():
    with pytest.raises(ConfigurationError, match="vmdk_subformat applies to format vmdk only"):
        ops_restore.ImageFormat("qcow2", "streamOptimized")
    with pytest.raises(ConfigurationError, match="format 'vdi'"):
        ops_restore.ImageFormat("vdi")
