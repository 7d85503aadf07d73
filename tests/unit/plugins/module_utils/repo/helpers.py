"""Helpers of the repository tests: repositories with fast locks, disk generators, a backup driver, crash injection."""
import hashlib
import threading
import uuid

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import BackendError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import DiskIndex, Repository, RepositorySettings, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.backend import BackendWrapper
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.model import DiskRecord, ManifestDraft, VmConfig, VmRecord
from labkit.s3servers import LOCKED_BUCKET, PLAIN_BUCKET as BUCKET  # noqa: F401  pylint: disable=unused-import

MIB = 1 << 20
PASSPHRASE = "correct horse battery staple"


def s3_backend(server, bucket=BUCKET, **kwargs):
    """A backend under a fresh prefix of ``bucket`` on ``server`` (a labkit.s3servers.S3Server), with its credentials;
    ``kwargs``: more RepositorySettings."""
    kwargs.setdefault("access_key", server.access_key)
    kwargs.setdefault("secret_key", server.secret_key)
    return open_backend(RepositorySettings("s3://%s/t-%s" % (bucket, uuid.uuid4().hex), s3_endpoint_url=server.endpoint,
                                           region=server.region, **kwargs))


def fast_locks(repo, stale_after=60.0):
    settings = repo.lock_settings
    settings.refresh_interval = 0.2
    settings.retry_interval = 0.02
    settings.stale_after = stale_after
    settings.skew_margin = stale_after / 3
    settings.gc_wait = 0.3
    settings.backup_wait = 30.0
    return repo


def make_repo(backend, encrypted=True, chunk_size=MIB, **kwargs):
    repo = Repository.create(backend, chunk_size=chunk_size, encryption=encrypted, passphrase=PASSPHRASE if encrypted else None,
                             **kwargs)
    return fast_locks(Repository.open(backend, passphrase=PASSPHRASE if encrypted else None))


def reopen(repo, backend=None):
    return fast_locks(Repository.open(backend or repo.backend, passphrase=PASSPHRASE if repo.encrypted else None))


def random_disk(size, seed, zero_chunks=(), chunk_size=MIB):
    """Deterministic pseudo-random disk image with some all-zero chunks."""
    import random

    rnd = random.Random(seed)
    data = bytearray(rnd.randbytes(size))
    for number in zero_chunks:
        data[number * chunk_size:(number + 1) * chunk_size] = bytes(len(data[number * chunk_size:(number + 1) * chunk_size]))
    return data


def structured_disk(size, seed, chunk_size=MIB):
    """A disk that looks like a file system: compressible text, a hole, repeated blocks, a random tail."""
    import random

    rnd = random.Random(seed)
    data = bytearray(size)
    text = b"".join(b"line %08d of /var/log/messages: kernel: something happened\n" % i for i in range(chunk_size // 48))
    data[0:chunk_size] = text[:chunk_size]
    data[2 * chunk_size:3 * chunk_size] = text[:chunk_size]  # the same chunk twice on one disk
    tail = min(size, 3 * chunk_size + 12345)
    data[3 * chunk_size + 100:tail] = rnd.randbytes(tail - 3 * chunk_size - 100)
    data[-7:] = b"THE END"
    return data


def backup(repo, vm_key, disks, run_id=None, previous=None, changed=None, threads=2):
    """Back up ``disks`` {disk_key: bytes} of one VM like the transfer layer would; returns (rp_id, stored bytes).

    With ``previous`` (an rp id) and ``changed`` {disk_key: set of chunk numbers}, only those chunks are read
    and the rest is carried over from the previous index.
    """
    from concurrent.futures import ThreadPoolExecutor

    run_id = run_id or uuid.uuid4().hex
    stored = 0
    with repo.begin_backup(vm_key=vm_key, run_id=run_id) as session:
        entries = []
        for disk_key, data in disks.items():
            if previous is not None:
                index = session.previous_index(previous, disk_key)
                numbers = sorted(changed.get(disk_key, ()))
            else:
                index = DiskIndex(len(data), repo.chunk_size)
                numbers = range(index.count)

            def work(number, data=data, index=index):
                chunk = bytes(data[number * repo.chunk_size:(number + 1) * repo.chunk_size])
                if not any(chunk):
                    index.set_zero(number)
                    return 0
                digest = hashlib.sha256(chunk).digest()
                index.set(number, digest)
                return session.put_chunk(digest, chunk)

            with ThreadPoolExecutor(max_workers=threads) as pool:
                stored += sum(pool.map(work, numbers))
            session.add_disk_index(disk_key, index)
            entries.append(disk_record(disk_key, len(data), mode="incremental" if previous else "full",
                                       change_id="52 aa/%d" % len(data), file_name="[ds1] %s/%s.vmdk" % (vm_key, disk_key)))
        rp_id = session.commit(ManifestDraft.build(session.run_id, vm_record(vm_key), entries, stats={"stored": stored})).id
    return rp_id, stored


def disk_record(disk_key, capacity, mode="full", change_id=None, file_name=None):
    """What a backup knows of a disk it stored (the repository adds index, index_sha256, sha256, block size)."""
    return DiskRecord(key=disk_key, label="Hard disk %s" % disk_key, capacity=capacity,
                      controller={"key": 1000, "type": "pvscsi", "bus_number": 0}, unit_number=0,
                      file_name=file_name or "[ds1] vm/%s.vmdk" % disk_key, uuid="6000c29" + disk_key, change_id=change_id,
                      mode=mode, reason="test", bytes_read=capacity, bytes_new=0)


def vm_record(vm_key):
    config = VmConfig.from_json({"name": "vm " + vm_key, "guest_id": "otherGuest64", "firmware": "efi", "num_cpus": 2,
                                 "memory_mb": 2048, "controllers": [], "nics": [], "annotation": "tést"})
    return VmRecord(key=vm_key, name="vm " + vm_key, moref="vm-42", instance_uuid=vm_key, config=config)


def manifest_for(vm_key, disks, run_id="r"):
    """The ManifestDraft of ``disks`` {disk_key: capacity} of run ``run_id``."""
    return ManifestDraft.build(run_id, vm_record(vm_key), [disk_record(k, c) for k, c in disks.items()])


def read_disk(repo, rp_id, disk_key):
    reader = repo.open_disk_reader(rp_id, disk_key)
    return reader.read(0, reader.capacity)


class CrashingBackend(BackendWrapper):
    """Fails the ``fail_at``-th mutating call (put, delete or delete_many); after it, every call fails (the process is dead)."""

    def __init__(self, inner, fail_at):
        super().__init__(inner)
        self.fail_at = fail_at
        self.writes = 0
        self.dead = False
        self._mutex = threading.Lock()

    def _call(self, method, *args, **kwargs):
        with self._mutex:
            if not self.dead and method in ("put", "delete", "delete_many"):
                self.writes += 1
                if self.writes == self.fail_at:
                    self.dead = True
            if self.dead:
                raise BackendError("injected crash at write %d (%s)" % (self.fail_at, method))
        return getattr(self.inner, method)(*args, **kwargs)


class CountingBackend(BackendWrapper):
    """Counts calls per method (to prove that dedup costs no request per chunk); calls on objects whose name starts
    with one of ``ignore`` are not counted (a lock's heartbeat renews it on its own schedule, which a loaded machine
    can bring into any window)."""

    def __init__(self, inner, ignore=()):
        super().__init__(inner)
        self.calls = {}
        self.ignore = tuple(ignore)
        self._mutex = threading.Lock()

    def _call(self, method, *args, **kwargs):
        name = args[0] if args and isinstance(args[0], str) else ""
        if not (self.ignore and name.startswith(self.ignore)):
            with self._mutex:
                self.calls[method] = self.calls.get(method, 0) + 1
        return getattr(self.inner, method)(*args, **kwargs)


def beside_prune_and_gc(repo, writers, errors, rounds_timeout=600):
    """Run the callables ``writers`` (no argument each) in threads while prune (keep_last 1) and GC loop beside them on
    ``repo``; exceptions of the loop go to ``errors``. Returns the number of chunks each GC run removed."""
    removed = []
    stop = threading.Event()

    def maintenance():
        maintainer = reopen(repo)
        while not stop.is_set():
            try:
                maintainer.prune({"keep_last": 1}, dry_run=False)
                removed.append(maintainer.gc(lock_wait=5)["chunks_removed"])
            except Exception as exc:      # reported by the caller  # pylint: disable=broad-exception-caught
                errors.append(("maintenance", exc))

    threads = [threading.Thread(target=writer) for writer in writers]
    looping = threading.Thread(target=maintenance)
    looping.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=rounds_timeout)
    stop.set()
    looping.join(timeout=120)
    return removed
