"""One operation of the product in a child process, for the torture suite: ``python child.py SPEC.json``.

The torture driver (run.py) starts this script, may kill -9 it at any moment, and reads its last stdout line when it
ends: ``{"ok": true, "result": {...}}`` (exit 0), or ``{"ok": false, "typed": true|false, "error_class": ...,
"message": ...}`` (exit 3 for a BlockvaultError, 4 for any other exception: a defect). SPEC holds the operation
(``op``), its arguments, the repository settings and, for operations that reach a VM, the lab's vCenter and VDDK
settings. LABVDDK_* knobs come from the environment. Operations:

- ``backup`` (vm, mode, run_id), ``prune`` (policy, gc), ``gc``, ``validate`` (level),
- ``restore_file`` (restore_point, disk, path), ``restore_new_vm`` (restore_point, name, placement),
  ``restore_in_place`` (restore_point, vm),
- ``key_add`` (new_passphrase), ``key_remove`` (the key opened by repo.passphrase removes itself),
- ``hold_lock`` (writes a shared lock and waits to be killed: leaves a stale lock),
- ``corruption_case`` (validate full, then restore each of ``points`` [{id, disk}] to files under ``scratch``,
  reporting the sha256 of each file or the typed error; used on deliberately damaged repositories).
"""
import contextlib
import json
import os
import sys
import time
import traceback

from labkit.testing import sha256_file

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import BlockvaultError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import copy as ops_copy
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import prune as ops_prune
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import repository as ops_repository
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import validate as ops_validate
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.backup import backup_vm
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import (
    BackupRequest, Endpoints, RestorePointQuery, RunSettings)
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import RestoreRequest, restore
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import (
    RepositorySettings, VddkSettings, VSphereSettings)
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.targets import File, InPlace, NewVm, Placement
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository, crypto, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.locks import SHARED


def _endpoints(spec):
    repo = RepositorySettings(**spec["repo"])
    if "vsphere" not in spec:
        return Endpoints(repo=repo)
    return Endpoints(repo=repo, vsphere=VSphereSettings(**spec["vsphere"]), vddk=VddkSettings(**spec["vddk"]))


def _settings(spec):
    return RunSettings(workers=spec.get("workers", 2), status_file=spec.get("status_file"))


def _restore(spec, target):
    query = RestorePointQuery(spec["restore_point"])
    return restore(RestoreRequest(query, target), _endpoints(spec), _settings(spec))


def _open(spec):
    return Repository.open(open_backend(RepositorySettings(**spec["repo"])), passphrase=spec["repo"].get("passphrase"))


def op_backup(spec):
    request = BackupRequest(vm={"name": spec["vm"]}, mode=spec.get("mode", "auto"), quiesce=False, run_id=spec["run_id"])
    return backup_vm(request, _endpoints(spec), _settings(spec))


def op_prune(spec):
    return ops_prune.prune(RepositorySettings(**spec["repo"]), spec["policy"], gc=spec.get("gc", True))


def op_gc(spec):
    with contextlib.closing(_open(spec)) as repository:
        return repository.gc(dry_run=False)


def op_validate(spec):
    request = ops_validate.ValidateRequest(level=spec.get("level", "full"))
    return ops_validate.validate(request, RepositorySettings(**spec["repo"]), _settings(spec))


def op_restore_file(spec):
    return _restore(spec, File(path=spec["path"], disk=spec["disk"], force=True))


def op_restore_new_vm(spec):
    return _restore(spec, NewVm(spec["name"], placement=Placement(**spec.get("placement", {})), force=True))


def op_restore_in_place(spec):
    return _restore(spec, InPlace(vm={"name": spec["vm"]}, force=True))


def op_key_add(spec):
    request = ops_repository.RepositoryRequest(new_passphrase=spec["new_passphrase"])
    return ops_repository.ensure_repository(request, RepositorySettings(**spec["repo"]))


def op_key_remove(spec):
    with contextlib.closing(_open(spec)) as repository:
        key_id = repository.opened_key_id
        repository.remove_key(key_id)
        return {"removed": key_id}


def op_copy(spec):
    request = ops_copy.CopyRequest(destination=RepositorySettings(**spec["destination"]), last=spec.get("last"),
                                   rate_limit_mbps=spec.get("rate_limit_mbps"))
    return ops_copy.copy(request, RepositorySettings(**spec["repo"]), _settings(spec))


def op_hold_lock(spec):
    with contextlib.closing(_open(spec)) as repository:
        repository.locks.acquire(SHARED, "torture: a lock left by a killed process")
        print(json.dumps({"ok": True, "result": {"holding": True}}), flush=True)
        time.sleep(600)
    raise RuntimeError("hold_lock was not killed")


def op_corruption_case(spec):
    report = {"validation": None, "restores": []}
    try:
        report["validation"] = {"ok": True, "result": op_validate(spec)}
    except BlockvaultError as exc:
        report["validation"] = {"ok": False, "typed": True, "error_class": type(exc).__name__, "message": str(exc)}
    except Exception as exc:  # pylint: disable=broad-except  # an untyped error is what the suite reports
        report["validation"] = {"ok": False, "typed": False, "error_class": type(exc).__name__, "message": str(exc),
                                "trace": traceback.format_exc(limit=6)}
    for point in spec["points"]:
        path = os.path.join(spec["scratch"], "%s-%s.raw" % (point["id"], point["disk"]))
        outcome = {"id": point["id"], "disk": point["disk"]}
        try:
            restore(RestoreRequest(RestorePointQuery(point["id"]), File(path=path, disk=point["disk"], force=True)),
                    Endpoints(repo=RepositorySettings(**spec["repo"])), _settings(spec))
            outcome.update(ok=True, sha256=sha256_file(path))
        except BlockvaultError as exc:
            outcome.update(ok=False, typed=True, error_class=type(exc).__name__, message=str(exc))
        except Exception as exc:  # pylint: disable=broad-except
            outcome.update(ok=False, typed=False, error_class=type(exc).__name__, message=str(exc))
        outcome["file_left"] = os.path.exists(path) and not outcome["ok"]
        outcome["partial_left"] = os.path.exists(path + ".partial")
        with contextlib.suppress(OSError):
            os.unlink(path)
        report["restores"].append(outcome)
    return report


OPERATIONS = {name[len("op_"):]: function for name, function in globals().items() if name.startswith("op_")}


def main(path):
    with open(path, encoding="utf-8") as handle:
        spec = json.load(handle)
    # the key derivation cost of the repositories the torture creates (kept in each key object it writes)
    crypto.SCRYPT_PARAMS = {"n": spec.get("scrypt_n", 1 << 12), "r": 8, "p": 1}
    try:
        result = OPERATIONS[spec["op"]](spec)
    except BlockvaultError as exc:
        print(json.dumps({"ok": False, "typed": True, "error_class": type(exc).__name__, "message": str(exc)}), flush=True)
        return 3
    except Exception as exc:  # pylint: disable=broad-except  # an untyped error is a defect: say which
        print(json.dumps({"ok": False, "typed": False, "error_class": type(exc).__name__, "message": str(exc),
                          "trace": traceback.format_exc(limit=8)}), flush=True)
        return 4
    print(json.dumps({"ok": True, "result": result}, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
