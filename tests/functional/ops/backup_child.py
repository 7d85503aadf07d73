"""A backup in a child process, for the kill -9 tests: ``python backup_child.py SPEC.json``.

SPEC holds the lab settings, the repository (location, passphrase), the VM name, the run id and the status file.
The LABVDDK_* knobs come from the environment. Prints the result as JSON on success.
"""
import json
import sys

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.backup import backup_vm
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import (
    RepositorySettings, VddkSettings, VSphereSettings)


def main(path):
    with open(path, encoding="utf-8") as handle:
        spec = json.load(handle)
    result = backup_vm(VSphereSettings(**spec["vsphere"]), VddkSettings(**spec["vddk"]), RepositorySettings(**spec["repo"]),
                       {"name": spec["vm"]}, quiesce=False, run_id=spec["run_id"], status_file=spec["status_file"])
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
