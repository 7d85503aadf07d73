"""labctl: the lab operator's tool (run with `. .lab/env` sourced; stdlib + pyvmomi).

  labctl write     --vm NAME --disk N --offset BYTES --length BYTES [--seed S]   guest write of seeded bytes
  labctl checksum  --vm NAME --disk N [--snapshot NAME]                         SHA-256 of the whole disk
  labctl reset-cbt --vm NAME                                                    new CBT epoch (power loss)
  labctl add-disk  --vm NAME --size BYTES                                       ReconfigVM: add a thin disk
  labctl grow-disk --vm NAME --disk N --size BYTES                              ReconfigVM: grow disk N
  labctl disks     --vm NAME                                                    the VM's disks (JSON)
  labctl seed-fs   --vm NAME --disk N --fs ext4|ntfs [--table mbr|gpt] [--label L] --from DIR
                   a partition table and a filesystem holding the files of DIR (labkit.guestfs)
  labctl write-file --vm NAME --disk N --path GUEST_PATH --from LOCAL_FILE      a file written into that filesystem

--disk N is the 0-based position among the VM's disks in device order. Sizes accept K/M/G suffixes (binary).
Talks to the simulator only: SOAP through pyvmomi and the /lab endpoints (tests/lab/PROTOCOL.md section 4),
TLS verified with VMWARE_CA_BUNDLE.
"""
import argparse
import base64
import json
import os
import pathlib
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ENV_VARS = ("VMWARE_HOST", "VMWARE_PORT", "VMWARE_USER", "VMWARE_PASSWORD", "VMWARE_CA_BUNDLE")


class LabctlError(Exception):
    """A failure to report as one line on stderr."""


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    raw = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = 1
    if raw and raw[-1] in units:
        mult, raw = units[raw[-1]], raw[:-1]
    try:
        value = int(raw) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (bytes, or with K/M/G)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def settings():
    missing = [name for name in ENV_VARS if not os.environ.get(name)]
    if missing:
        raise LabctlError(f"{', '.join(missing)} not set: start the lab (`make lab`) and run `. .lab/env`")
    env = {name: os.environ[name] for name in ENV_VARS}
    if not os.path.isfile(env["VMWARE_CA_BUNDLE"]):
        raise LabctlError(f"VMWARE_CA_BUNDLE={env['VMWARE_CA_BUNDLE']} does not exist: is the lab running?")
    return env


def ssl_context(env):
    return ssl.create_default_context(cafile=env["VMWARE_CA_BUNDLE"])


def lab_request(env, method, path, body=None, **params):
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    url = f"https://{env['VMWARE_HOST']}:{env['VMWARE_PORT']}{path}?{query}"
    token = base64.b64encode(f"{env['VMWARE_USER']}:{env['VMWARE_PASSWORD']}".encode()).decode()
    req = urllib.request.Request(url, method=method, headers={"Authorization": "Basic " + token},
                                 data=(body or b"") if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, context=ssl_context(env), timeout=300) as resp:
            return resp.read().decode()
    except urllib.error.HTTPError as exc:
        raise LabctlError(f"{path}: {exc.read().decode(errors='replace').strip()} (HTTP {exc.code})") from None
    except urllib.error.URLError as exc:
        raise LabctlError(f"cannot reach the lab at {env['VMWARE_HOST']}:{env['VMWARE_PORT']}: {exc.reason}") \
            from None


def connect(env):
    try:
        from pyVim.connect import SmartConnect  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise LabctlError(f"pyvmomi is needed for this command ({exc}); use the project's .venv") from None
    try:
        return SmartConnect(host=env["VMWARE_HOST"], port=int(env["VMWARE_PORT"]), user=env["VMWARE_USER"],
                            pwd=env["VMWARE_PASSWORD"], sslContext=ssl_context(env))
    except Exception as exc:  # pylint: disable=broad-except
        raise LabctlError(f"cannot log in to the lab at {env['VMWARE_HOST']}:{env['VMWARE_PORT']}: "
                          f"{getattr(exc, 'msg', None) or exc}") from None


def find_vm(si, name):
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
    try:
        for vm in view.view:
            if vm.name == name:
                return vm
    finally:
        view.DestroyView()
    raise LabctlError(f"virtual machine {name!r} not found")


def vm_disks(vm):
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel
    return [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]


def wait_task(task, what):
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel
    while task.info.state not in (vim.TaskInfo.State.success, vim.TaskInfo.State.error):
        time.sleep(0.05)
    if task.info.state == vim.TaskInfo.State.error:
        fault = task.info.error
        raise LabctlError(f"{what} failed: {getattr(fault, 'msg', None) or type(fault).__name__}")
    return task.info.result


def cmd_add_disk(env, args):
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel
    if args.size <= 0 or args.size % 1024:
        raise LabctlError(f"--size {args.size}: give a positive multiple of 1 KiB")
    si = connect(env)
    vm = find_vm(si, args.vm)
    devices = vm.config.hardware.device
    used = {(d.controllerKey, d.unitNumber) for d in devices if d.unitNumber is not None}
    slot = None
    for ctrl in devices:
        if isinstance(ctrl, vim.vm.device.VirtualSCSIController):
            free = [u for u in range(16) if u != ctrl.scsiCtlrUnitNumber and (ctrl.key, u) not in used]
            if free:
                slot = (ctrl.key, free[0])
                break
    if slot is None:
        raise LabctlError(f"virtual machine {args.vm!r} has no SCSI controller with a free unit")
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName="", diskMode="persistent", thinProvisioned=True)
    disk = vim.vm.device.VirtualDisk(key=-1, controllerKey=slot[0], unitNumber=slot[1], backing=backing,
                                     capacityInKB=args.size // 1024, capacityInBytes=args.size)
    change = vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)
    wait_task(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change])), f"adding a disk to {args.vm}")
    disks = json.loads(lab_request(env, "GET", "/lab/disks", vm=args.vm))
    print(json.dumps(disks[-1] if disks else {}, indent=2))


def cmd_grow_disk(env, args):
    from pyVmomi import vim  # pylint: disable=import-outside-toplevel
    si = connect(env)
    vm = find_vm(si, args.vm)
    disks = vm_disks(vm)
    if not 0 <= args.disk < len(disks):
        raise LabctlError(f"virtual machine {args.vm!r} has {len(disks)} disk(s); disk {args.disk} does not exist")
    disk = disks[args.disk]
    current = disk.capacityInBytes or disk.capacityInKB * 1024
    if args.size % 1024 or args.size < current:
        raise LabctlError(f"--size {args.size}: must be a multiple of 1 KiB and at least the current {current}")
    disk.capacityInBytes = args.size
    disk.capacityInKB = args.size // 1024
    change = vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)
    wait_task(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change])), f"growing disk {args.disk}")
    print(json.dumps(json.loads(lab_request(env, "GET", "/lab/disks", vm=args.vm))[args.disk], indent=2))


class EnvLab:
    """The two lab calls labkit.guestfs makes, through the lab named by the environment (VMWARE_*)."""

    def __init__(self, env):
        self.env = env

    def disks(self, vm):
        return json.loads(lab_request(self.env, "GET", "/lab/disks", vm=vm))

    def write_bytes(self, vm, disk, offset, data):
        return json.loads(lab_request(self.env, "POST", "/lab/write-bytes", body=data, vm=vm, disk=disk, offset=offset))


def cmd_seed_fs(env, args):
    from labkit import guestfs  # pylint: disable=import-outside-toplevel  # tests/lab is this script's directory
    root = pathlib.Path(args.source)
    if not root.is_dir():
        raise LabctlError(f"--from {root}: not a directory")
    files = {"/" + str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}
    try:
        offset, size = guestfs.seed_disk(EnvLab(env), args.vm, args.disk,
                                         guestfs.FsLayout(args.fs, files=files, table=args.table, label=args.label))
    except (ValueError, RuntimeError) as exc:
        raise LabctlError(str(exc)) from None
    print(json.dumps({"vm": args.vm, "disk": args.disk, "fs": args.fs, "partition_offset": offset,
                      "partition_size": size, "files": sorted(files)}, indent=2))


def cmd_write_file(env, args):
    from labkit import guestfs  # pylint: disable=import-outside-toplevel
    try:
        written = guestfs.write_file(EnvLab(env), args.vm, args.disk, args.path, pathlib.Path(args.source).read_bytes())
    except (OSError, RuntimeError) as exc:
        raise LabctlError(str(exc)) from None
    print(json.dumps({"vm": args.vm, "disk": args.disk, "path": args.path, "bytes_written_to_disk": written}))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="labctl", description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("write", help="guest write of deterministic pseudo-random bytes")
    p.add_argument("--vm", required=True)
    p.add_argument("--disk", type=int, required=True)
    p.add_argument("--offset", type=parse_size, required=True)
    p.add_argument("--length", type=parse_size, required=True)
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("checksum", help="SHA-256 of the whole disk (live, or as a snapshot sees it)")
    p.add_argument("--vm", required=True)
    p.add_argument("--disk", type=int, required=True)
    p.add_argument("--snapshot")
    p = sub.add_parser("reset-cbt", help="start a new CBT epoch on every disk of the VM")
    p.add_argument("--vm", required=True)
    p = sub.add_parser("add-disk", help="add a thin disk (ReconfigVM_Task)")
    p.add_argument("--vm", required=True)
    p.add_argument("--size", type=parse_size, required=True)
    p = sub.add_parser("grow-disk", help="grow disk N (ReconfigVM_Task)")
    p.add_argument("--vm", required=True)
    p.add_argument("--disk", type=int, required=True)
    p.add_argument("--size", type=parse_size, required=True)
    p = sub.add_parser("disks", help="list the VM's disks in device order (JSON)")
    p.add_argument("--vm", required=True)
    p = sub.add_parser("seed-fs", help="give disk N a partition table and a filesystem with the files of --from")
    p.add_argument("--vm", required=True)
    p.add_argument("--disk", type=int, required=True)
    p.add_argument("--fs", choices=("ext4", "ntfs"), required=True)
    p.add_argument("--table", choices=("mbr", "gpt"), default="mbr")
    p.add_argument("--label", default="labfs")
    p.add_argument("--from", dest="source", required=True)
    p = sub.add_parser("write-file", help="write a file into the filesystem seed-fs made (guest writes)")
    p.add_argument("--vm", required=True)
    p.add_argument("--disk", type=int, required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--from", dest="source", required=True)
    args = parser.parse_args(argv)
    try:
        env = settings()
        if args.command == "write":
            print(lab_request(env, "POST", "/lab/write", vm=args.vm, disk=args.disk, offset=args.offset,
                              length=args.length, seed=args.seed).strip())
        elif args.command == "checksum":
            print(lab_request(env, "GET", "/lab/checksum", vm=args.vm, disk=args.disk,
                              snapshot=args.snapshot).strip())
        elif args.command == "reset-cbt":
            print(json.dumps(json.loads(lab_request(env, "POST", "/lab/reset-cbt", vm=args.vm)), indent=2))
        elif args.command == "disks":
            print(json.dumps(json.loads(lab_request(env, "GET", "/lab/disks", vm=args.vm)), indent=2))
        elif args.command == "add-disk":
            cmd_add_disk(env, args)
        elif args.command == "grow-disk":
            cmd_grow_disk(env, args)
        elif args.command == "seed-fs":
            cmd_seed_fs(env, args)
        elif args.command == "write-file":
            cmd_write_file(env, args)
    except LabctlError as exc:
        print(f"labctl: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
