"""The torture suite's harness: the lab, an S3 server, repositories, child processes, and the lab's own checksums.

``Harness`` starts one lab (small disks so that a full check is cheap) and one S3 server, creates repositories
(``new_repo``), runs product operations in child processes (``run_child``, optionally killing them with SIGKILL
after a delay), and checks restore points byte for byte: ``Expectations`` holds, per repository, the sha256 of
every disk of every restore point as the lab computed it (``/lab/checksum``) when the VM was in that state; the
product's own checksums are never used as the reference. Not thread-safe except where a method says so
(``run_child``, ``verify_point`` and ``Expectations`` are called from the concurrency threads).
"""
import dataclasses
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

from labkit import Lab
from labkit.s3servers import PLAIN_BUCKET, MotoServer, SeaweedServer
from labkit.testing import sha256_file, wait_task

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import BlockvaultError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository, crypto, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.settings import RepositorySettings

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
COLLECTIONS = ROOT / "build" / "collections"
MIB = 1 << 20
CHUNK = MIB
PASSPHRASE = "torture passphrase"
SCRYPT_N = 1 << 12                 # cheap key derivation: the torture opens repositories thousands of times
INCOMPLETE_KEY = "blockvault.restore.incomplete"   # ops.targets.INCOMPLETE_KEY, read here through pyVmomi
PLACEMENT = {"resource_pool": "DC0_C0"}
DISKS = {"vm1_disk0": "8M", "vm1_disk1": "4M", "vm2_disk0": "4M"}


def chunk_digests(path, size=CHUNK):
    """The sha256 (hex, 12 digits) of each ``size`` bytes of the file at ``path``: enough to tell chunks apart."""
    out = []
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(size), b""):
            out.append(hashlib.sha256(block).hexdigest()[:12])
    return tuple(out)


@dataclasses.dataclass
class ChildOutcome:
    """How a child ended: ``killed`` (by us, while it still ran), ``returncode``, its JSON ``answer`` (None when it
    printed none), ``duration`` (s), ``stderr`` (the tail)."""

    killed: bool
    returncode: int
    answer: dict
    duration: float
    stderr: str

    @property
    def ok(self):
        return bool(self.answer and self.answer.get("ok"))

    @property
    def result(self):
        return (self.answer or {}).get("result")

    def describe(self):
        if self.answer and not self.answer.get("ok"):
            return "%s%s: %s" % ("" if self.answer.get("typed") else "untyped ", self.answer.get("error_class"),
                                 self.answer.get("message"))
        return "exit %s, no answer; stderr: %s" % (self.returncode, self.stderr[-600:])


class Expectations:
    """The lab's checksums of each restore point of each repository: {location: {rp_id: [candidate states]}}, a
    state being a tuple of per-disk sha256 in the VM's disk order. Several candidates when guest writes ran during
    the backup (any state the VM had in the backup's window is right). Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._points = {}

    def record(self, location, rp_id, states):
        with self._lock:
            self._points.setdefault(location, {})[rp_id] = [tuple(state) for state in states]

    def get(self, location, rp_id):
        with self._lock:
            return self._points.get(location, {}).get(rp_id)

    def forget(self, location, rp_id):
        with self._lock:
            self._points.get(location, {}).pop(rp_id, None)

    def points(self, location):
        with self._lock:
            return dict(self._points.get(location, {}))


class Harness:
    """One lab, one S3 server, the repositories of a torture run, and child processes of product operations."""

    def __init__(self, workdir, s3_kind="moto"):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.lab = Lab.start(self.workdir / "lab", **DISKS)
        server_class = SeaweedServer if s3_kind == "seaweedfs" else MotoServer
        try:
            self.s3 = server_class.start(self.workdir / "s3")
        except BaseException:
            self.lab.stop()
            raise
        self.s3_kind = s3_kind
        info = self.lab.info
        self.vsphere = {"host": info["host"], "username": info["user"], "password": info["password"],
                        "port": int(info["port"]), "ca_bundle": info["ca_bundle"]}
        self.vddk = {"libdir": self.lab.env()["VDDK_LIBDIR"], "thumbprint": info["thumbprint"]}
        self.expect = Expectations()
        self._children = set()
        self._children_lock = threading.Lock()
        crypto.SCRYPT_PARAMS = {"n": SCRYPT_N, "r": 8, "p": 1}

    def close(self):
        with self._children_lock:
            children = list(self._children)
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        try:
            self.s3.stop()
        finally:
            self.lab.stop()

    # -- repositories --------------------------------------------------------------------------------------
    def repo_settings(self, backend, name, passphrase=PASSPHRASE):
        """The settings (a dict of RepositorySettings fields) of repository ``name`` on ``backend`` local | s3."""
        if backend == "local":
            return {"location": str(self.workdir / "repos" / name), "passphrase": passphrase}
        return {"location": "s3://%s/torture-%s" % (PLAIN_BUCKET, name), "passphrase": passphrase,
                "s3_endpoint_url": self.s3.endpoint, "region": self.s3.region, "access_key": self.s3.access_key,
                "secret_key": self.s3.secret_key}

    def new_repo(self, backend, name):
        repo = self.repo_settings(backend, "%s-%s" % (name, uuid.uuid4().hex[:6]))
        Repository.create(open_backend(RepositorySettings(**repo)), chunk_size=CHUNK, passphrase=PASSPHRASE).close()
        return repo

    @staticmethod
    def open_repo(repo, passphrase=None):
        settings = RepositorySettings(**dict(repo, passphrase=passphrase or repo["passphrase"]))
        return Repository.open(open_backend(settings), passphrase=settings.passphrase)

    def restore_points(self, repo):
        repository = self.open_repo(repo)
        try:
            return [point.id for point in repository.list_restore_points()]
        finally:
            repository.close()

    # -- the lab's own view ----------------------------------------------------------------------------------
    def checksums(self, vm):
        return tuple(self.lab.checksum(vm, n) for n in range(len(self.lab.disks(vm))))

    def guest_write(self, rng, vm):
        """A guest write of random length at a random place of a random disk of ``vm`` (the lab's /lab/write)."""
        disks = self.lab.disks(vm)
        disk = rng.randrange(len(disks))
        capacity = int(disks[disk]["capacity"]) if isinstance(disks[disk], dict) and "capacity" in disks[disk] else MIB * 4
        length = rng.choice([4096, 65536, 300000, MIB + 12345])
        offset = rng.randrange(0, max(1, capacity - length)) // 512 * 512
        self.lab.write(vm, disk, offset, length, seed=rng.randrange(1 << 30))
        return disk, offset, length

    def chunk_states(self, vm):
        """Per disk of ``vm``, the per-chunk digests of its live content, read from the lab's flat files under the
        lab's shared lock (tests/lab/PROTOCOL.md): what a restore point's chunks are compared with on a mismatch."""
        out = []
        for disk in self.lab.disks(vm):
            with open(disk["flat"], "rb") as flat:
                fcntl.flock(flat, fcntl.LOCK_SH)
                out.append(chunk_digests(disk["flat"]))
        return tuple(out)

    def vm_facts(self, name):
        """What pyVmomi (not the product) sees of VM ``name``: {exists, marker (the restore-incomplete advanced
        setting), snapshots (names)}."""
        from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
        service = self.lab.connect()
        try:
            vm = service.content.searchIndex.FindByInventoryPath("DC0/vm/%s" % name)
            if vm is None:
                return {"exists": False, "marker": "", "snapshots": []}
            # the last entry wins: the simulator lists a key again when it is set again
            marker = ([option.value for option in vm.config.extraConfig if option.key == INCOMPLETE_KEY] or [""])[-1]
            names = []

            def walk(trees):
                for tree in trees:
                    names.append(tree.name)
                    walk(tree.childSnapshotList)
            if vm.snapshot is not None:
                walk(vm.snapshot.rootSnapshotList)
            return {"exists": True, "marker": marker or "", "snapshots": names}
        finally:
            Disconnect(service)

    def destroy_vm(self, name):
        from pyVim.connect import Disconnect  # pylint: disable=import-outside-toplevel
        service = self.lab.connect()
        try:
            vm = service.content.searchIndex.FindByInventoryPath("DC0/vm/%s" % name)
            if vm is not None:
                wait_task(vm.Destroy_Task())
        finally:
            Disconnect(service)

    # -- child processes -------------------------------------------------------------------------------------
    def child_env(self, latency_us=0):
        environ = {name: value for name, value in os.environ.items() if not name.startswith("LABVDDK_")}
        environ.update(self.lab.env())
        environ.update(PYTHONPATH=os.pathsep.join([str(COLLECTIONS), str(ROOT / "tests" / "lab")]),  # child.py needs labkit.testing
                       XDG_STATE_HOME=str(self.workdir / "state"))
        if latency_us:
            environ["LABVDDK_LATENCY_US"] = str(latency_us)
        return environ

    def spec(self, op, repo, **arguments):
        spec = dict(arguments, op=op, repo=repo, scrypt_n=SCRYPT_N,
                    status_file=str(self.workdir / "status" / ("%s-%s.json" % (op, uuid.uuid4().hex[:10]))))
        if op in ("backup", "restore_new_vm", "restore_in_place"):
            spec.update(vsphere=self.vsphere, vddk=self.vddk)
        return spec

    def run_child(self, spec, kill_after=None, latency_us=0, timeout=300, ready_line=False):
        """Run child.py with ``spec``; SIGKILL it after ``kill_after`` seconds when given (``killed`` says whether it
        still ran then). With ``ready_line`` the kill delay counts from the child's first stdout line. Thread-safe."""
        spec_dir = self.workdir / "specs"
        spec_dir.mkdir(exist_ok=True)
        spec_path = spec_dir / ("%s-%s.json" % (spec["op"], uuid.uuid4().hex[:10]))
        spec_path.write_text(json.dumps(spec))
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, str(HERE / "child.py"), str(spec_path)], env=self.child_env(latency_us),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with self._children_lock:
            self._children.add(child)
        killed = False
        try:
            if ready_line:
                child.stdout.readline()
            if kill_after is not None:
                try:
                    child.wait(timeout=kill_after)
                except subprocess.TimeoutExpired:
                    os.kill(child.pid, signal.SIGKILL)
                    killed = True
            try:
                out, err = child.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                out, err = child.communicate()
                err += "\n(torture: killed after a timeout of %d s)" % timeout
        finally:
            with self._children_lock:
                self._children.discard(child)
        answer = None
        for line in reversed(out.splitlines()):
            if line.startswith("{"):
                try:
                    answer = json.loads(line)
                except ValueError:
                    pass
                break
        if killed:
            answer = None
        return ChildOutcome(killed, child.returncode, answer, time.monotonic() - started, err[-3000:])

    # -- checks ----------------------------------------------------------------------------------------------
    def validate_full(self, repo):
        """None when a full validation of ``repo`` is clean, else what it reported (in a child: a bounded time)."""
        outcome = self.run_child(self.spec("validate", repo, level="full"), timeout=300)
        if not outcome.ok:
            return "validation failed: " + outcome.describe()
        result = outcome.result
        if not result["ok"]:
            damaged, errors = json.dumps(result["damaged"])[:800], json.dumps(result["errors"])[:800]
            return "validation not ok: damaged %s errors %s" % (damaged, errors)
        return None

    def verify_point(self, repo, rp_id, scratch, explain=None):
        """Restore every disk of ``rp_id`` to files and compare with the lab's checksums recorded for it; None when
        byte-exact, else the difference. A point with no recorded expectation is itself a failure. ``explain``,
        when given, is called on a mismatch with the manifest and the restored disks' per-chunk digests and its
        text is added (what the concurrency campaign uses to say which chunks differ). Thread-safe."""
        states = self.expect.get(repo["location"], rp_id)
        if states is None:
            return "restore point %s has no recorded lab checksum (made by an unknown run)" % rp_id
        repository = self.open_repo(repo)
        try:
            manifest = repository.load_manifest(rp_id)
        finally:
            repository.close()
        from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.requests import (  # pylint: disable=import-outside-toplevel
            Endpoints, RestorePointQuery, RunSettings)
        from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.restore import (  # pylint: disable=import-outside-toplevel
            File, RestoreRequest, restore)
        got, restored_chunks = [], []
        pathlib.Path(scratch).mkdir(parents=True, exist_ok=True)
        for entry in manifest.disks:
            path = os.path.join(scratch, "%s-%s-%s.raw" % (rp_id, entry.key.value, uuid.uuid4().hex[:6]))
            try:
                restore(RestoreRequest(RestorePointQuery(rp_id), File(path=path, disk=entry.key.value)),
                        Endpoints(repo=RepositorySettings(**repo)), RunSettings(workers=2, status_file=path + ".status"))
                got.append(sha256_file(path))
                restored_chunks.append(chunk_digests(path) if explain else None)
            except BlockvaultError as exc:
                return "restore of %s disk %s failed: %s: %s" % (rp_id, entry.key.value, type(exc).__name__, exc)
            finally:
                for leftover in (path, path + ".status", path + ".status.log"):
                    if os.path.exists(leftover):
                        os.unlink(leftover)
        if tuple(got) not in states:
            problem = "restore point %s restored to %s; the lab's checksums of the VM then were %s" % (rp_id, got, states)
            return problem + (explain(manifest, restored_chunks) if explain else "")
        return None

    def verify_all(self, repo, scratch):
        """verify_point of every restore point in ``repo``: a list of failures (empty when all are byte-exact)."""
        return [problem for rp_id in self.restore_points(repo)
                for problem in [self.verify_point(repo, rp_id, scratch)] if problem]

    def remove_repo_dir(self, repo):
        if not repo["location"].startswith("s3://"):
            shutil.rmtree(repo["location"], ignore_errors=True)
