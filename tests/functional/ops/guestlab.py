"""What the file-level restore tests share: a lab VM with real guest filesystems backed up twice, and an export.

``guest_vm_points`` builds, once per test module, a VM with an ext4 disk (a small Linux root: /etc/os-release,
hostname, fstab) and an NTFS disk (GPT), writes version 1 of some files, backs it up, writes version 2 through the
lab's guest write path, backs it up again: ``GuestPoints.v1`` / ``.v2`` are the two restore point ids.

``standin_exported`` stands in for ops.export's ``exported`` (same signature, yields ``.uris`` and
``.restore_point``) while that layer is not on this branch: it restores each disk of the restore point to a raw file
with the product's own restore (File target) and serves it read-only with ``nbdkit file`` on a Unix socket, so the
guest layer reads through NBD as it does with the real export.
"""
import contextlib
import dataclasses
import pathlib
import subprocess
import uuid

from labkit.guestfs import FsLayout, create_vm, seed_disk, write_file
from labkit.testing import wait_task
from opslab import Env

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import restore as ops_restore
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import select_restore_point
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository, open_backend

MIB = 1 << 20
OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
LINUX_V1 = {
    "/etc/os-release": OS_RELEASE,
    "/etc/hostname": b"labguest\n",
    "/etc/fstab": b"LABEL=labroot / ext4 defaults 0 1\n",
    "/bin/sh": b"#!placeholder\n",
    "/etc/app/app.conf": b"listen = 8080\nmode = v1\n",
    "/srv/data/report.csv": b"id,value\n" + b"".join(b"%d,%d\n" % (n, n * n) for n in range(2000)),
}
LINUX_V2 = {"/etc/app/app.conf": b"listen = 9090\nmode = v2 (after the change window)\n"}
WINDOWS_V1 = {
    "/Users/alice/Documents/budget.txt": b"budget 2026, version 1\r\n",
    "/Users/alice/notes.txt": b"first notes\r\n",
}
WINDOWS_V2 = {"/Users/alice/Documents/budget.txt": b"budget 2026, version 2 with more lines\r\nsecond line\r\n"}


@dataclasses.dataclass(frozen=True)
class GuestPoints:
    """The guest VM ``vm`` and its two restore points (ids) ``v1`` and ``v2`` (``v2_created``: its creation time);
    ``env`` is an opslab.Env."""

    env: Env
    vm: str
    v1: str
    v2: str
    v2_created: str


@contextlib.contextmanager
def guest_vm_points(lab, si, tmp_path, monkeypatch):
    """The GuestPoints of a new VM (destroyed on exit); see the module notes."""
    name = "guestfs-%s" % uuid.uuid4().hex[:8]
    vm = create_vm(si, name, [48 * MIB, 24 * MIB])
    try:
        seed_disk(lab, name, 0, FsLayout("ext4", files=LINUX_V1, label="labroot"))
        seed_disk(lab, name, 1, FsLayout("ntfs", files=WINDOWS_V1, table="gpt", label="DATA"))
        env = Env(lab, tmp_path, monkeypatch)
        v1 = env.backup(name)["restore_point"]["id"]
        for path, data in LINUX_V2.items():
            write_file(lab, name, 0, path, data)
        for path, data in WINDOWS_V2.items():
            write_file(lab, name, 1, path, data)
        v2 = env.backup(name)["restore_point"]
        yield GuestPoints(env=env, vm=name, v1=v1, v2=v2["id"], v2_created=v2["created"])
    finally:
        wait_task(vm.Destroy_Task())


@dataclasses.dataclass(frozen=True)
class StandinExport:
    """What the stand-in yields: ``uris`` ({disk key: NBD URI}) and ``restore_point`` ({id, vm, created})."""

    uris: dict
    restore_point: dict


def _serve(stack, image, socket):
    # nbdkit starts the --run command once its socket listens: the command's first line says "ready", then it holds
    # the server until its stdin closes (the cleanup closes it), so neither readiness nor shutdown needs polling
    server = subprocess.Popen(["nbdkit", "--readonly", "--unix", str(socket), "file", str(image),
                               "--run", "echo ready; exec cat >/dev/null"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def stop():
        server.stdin.close()
        server.wait(60)
        server.stdout.close()
        server.stderr.close()
    stack.callback(stop)
    line = server.stdout.readline()
    if line.strip() != b"ready":
        raise AssertionError("nbdkit did not start: %s" % server.stderr.read().decode(errors="replace"))


def make_standin(env, scratch):
    """An ``exported(query, endpoints, settings, disks=None, writable=False)`` serving from ``scratch``."""
    @contextlib.contextmanager
    def exported(query, endpoints, settings=None, disks=None, writable=False):
        assert not writable, "file-level restore exports read-only"
        repository = Repository.open(open_backend(endpoints.repo.location), passphrase=endpoints.repo.passphrase)
        try:
            manifest = select_restore_point(repository, query)
        finally:
            repository.close()
        chosen = [disk for disk in manifest.disks if disks is None or disk.key in disks or disk.label in disks]
        directory = pathlib.Path(scratch) / uuid.uuid4().hex[:8]
        directory.mkdir(parents=True)
        with contextlib.ExitStack() as stack:
            uris = {}
            for disk in chosen:
                image = directory / ("%s.raw" % disk.key)
                env.restore(manifest.id, ops_restore.File(path=str(image), disk=disk.key))
                socket = directory / ("%s.sock" % disk.key)
                _serve(stack, image, socket)
                uris[disk.key] = "nbd+unix:///?socket=%s" % socket
            yield StandinExport(uris=uris, restore_point=manifest.reference())
    return exported
