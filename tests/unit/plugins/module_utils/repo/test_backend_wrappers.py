"""The retry and concurrency-limit wrappers, and put_chunk's parallelism (no lock held while encoding or uploading)."""
import hashlib
import threading

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import BackendError, NotFoundInBackendError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import (
    ConcurrencyLimitedBackend, LocalBackend, Repository, RetryingBackend)
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.backend import BackendWrapper
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import MIB, random_disk


class FlakyBackend(BackendWrapper):
    """Fails the first ``failures`` calls of get with the given error."""

    def __init__(self, inner, failures, error):
        super().__init__(inner)
        self.failures = failures
        self.error = error
        self.attempts = 0

    def get(self, name):
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error
        return self.inner.get(name)


def test_retry_transient_errors_with_backoff(tmp_path):
    local = LocalBackend(str(tmp_path))
    local.put("config", b"x")
    sleeps = []
    flaky = FlakyBackend(local, 3, BackendError("S3 could not read config: SlowDown (503).", transient=True))
    assert RetryingBackend(flaky, attempts=5, base_delay=0.5, max_delay=1.0, sleep=sleeps.append).get("config") == b"x"
    assert flaky.attempts == 4 and len(sleeps) == 3
    assert all(0 <= delay <= bound for delay, bound in zip(sleeps, (0.5, 1.0, 1.0)))
    flaky = FlakyBackend(local, 10, BackendError("down", transient=True))
    with pytest.raises(BackendError, match="down"):
        RetryingBackend(flaky, attempts=3, sleep=sleeps.append).get("config")
    assert flaky.attempts == 3


@pytest.mark.parametrize("error", [BackendError("Access denied.", transient=False), NotFoundInBackendError("gone")])
def test_no_retry_of_permanent_errors(tmp_path, error):
    flaky = FlakyBackend(LocalBackend(str(tmp_path)), 1, error)
    with pytest.raises(type(error)):
        RetryingBackend(flaky, attempts=5, sleep=lambda s: None).get("config")
    assert flaky.attempts == 1


class GateBackend(BackendWrapper):
    """Records the peak number of concurrent puts; each put waits at ``barrier`` when one is set."""

    def __init__(self, inner, barrier=None):
        super().__init__(inner)
        self.barrier = barrier
        self.active = 0
        self.peak = 0
        self._mutex = threading.Lock()

    def put(self, name, data, exclusive=False):
        with self._mutex:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            if self.barrier is not None and name.startswith("chunks/"):
                self.barrier.wait()
            return self.inner.put(name, data, exclusive=exclusive)
        finally:
            with self._mutex:
                self.active -= 1


def test_concurrency_limit(tmp_path):
    gate = GateBackend(LocalBackend(str(tmp_path), fsync=False))
    limited = ConcurrencyLimitedBackend(gate, max_concurrency=2)
    threads = [threading.Thread(target=limited.put, args=("chunks/00/%d" % i, b"x" * 100000)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= gate.peak <= 2 and len(limited.list("chunks/")) == 16


def test_put_chunk_uploads_from_two_threads_at_once(tmp_path):
    """Two put_chunk calls must be inside the backend's put at the same time (a barrier of 2 would break otherwise)."""
    gate = GateBackend(LocalBackend(str(tmp_path), fsync=False), threading.Barrier(2, timeout=20))
    Repository.create(gate, chunk_size=MIB, encryption=True, passphrase="p")
    repo = Repository.open(gate, passphrase="p")
    chunks = [bytes(random_disk(MIB, seed)) for seed in (1, 2)]
    with repo.begin_backup(vm_key="vm", run_id="r") as session:
        results = []
        threads = [threading.Thread(target=lambda c=c: results.append(session.put_chunk(hashlib.sha256(c).digest(), c))) for c in chunks]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 2 and all(r > MIB for r in results)
        # the same new chunk from two threads is stored once: the second caller waits for the first
        gate.barrier = None
        same = bytes(random_disk(MIB, 3))
        digest = hashlib.sha256(same).digest()
        outcome = []
        threads = [threading.Thread(target=lambda: outcome.append(session.put_chunk(digest, same))) for _unused in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcome)[0] == 0 and sorted(outcome)[1] > MIB
    assert gate.peak >= 2


def test_open_backend_specs(tmp_path):
    from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
    from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import open_backend

    by_url = open_backend("file://%s" % (tmp_path / "a"))
    by_path = open_backend(str(tmp_path / "a"))
    assert isinstance(by_url, RetryingBackend) and isinstance(by_url.inner, ConcurrencyLimitedBackend)
    assert by_url.location == by_path.location == str(tmp_path / "a")
    by_url.put("config", b"{}")
    assert by_path.get("config") == b"{}"
    with pytest.raises(ConfigurationError, match="Unsupported repository URL scheme in 'ftp'"):
        open_backend("ftp://host/x")
    with pytest.raises(ConfigurationError, match="needs a bucket"):
        open_backend("s3:///prefix")
    with pytest.raises(ConfigurationError, match="must be a path or an s3://bucket/prefix URL"):
        open_backend("")


class FlakyDeletes(BackendWrapper):
    """A batch-deleting store (``max_delete_batch`` 1000) whose first ``failures`` delete_many calls fail with ``error``
    after deleting the first name (a partial failure, as S3's per-key errors)."""

    def __init__(self, inner, failures, error):
        super().__init__(inner)
        self.max_delete_batch = 1000
        self.failures = failures
        self.error = error
        self.calls = []

    def delete_many(self, names):
        names = list(names)
        self.calls.append(names)
        if len(self.calls) <= self.failures:
            self.inner.delete(names[0])
            raise self.error
        return self.inner.delete_many(names)


def test_delete_many_through_the_wrappers(tmp_path):
    """Retry and limit pass delete_many through as one call (retried whole on a transient error, not on a permanent
    one) and carry the store's max_delete_batch; a plain LocalBackend deletes name by name."""
    local = LocalBackend(str(tmp_path))
    names = ["chunks/ab/%d" % n for n in range(5)]
    for name in names:
        local.put(name, b"x")
    flaky = FlakyDeletes(local, 1, BackendError("S3 could not delete 1 of 5 objects: SlowDown.", transient=True))
    wrapped = RetryingBackend(ConcurrencyLimitedBackend(flaky, max_concurrency=2), attempts=3, sleep=lambda s: None)
    assert wrapped.max_delete_batch == 1000 and local.max_delete_batch == 1
    wrapped.delete_many(iter(names))
    assert flaky.calls == [names, names] and local.list("") == []
    local.put(names[0], b"x")
    flaky = FlakyDeletes(local, 1, BackendError("S3 could not delete 1 of 1 objects: AccessDenied."))
    with pytest.raises(BackendError, match="AccessDenied"):
        RetryingBackend(flaky, attempts=3, sleep=lambda s: None).delete_many(names[:2])
    assert len(flaky.calls) == 1


def test_a_wrapper_that_changes_delete_sees_every_name_of_delete_many(tmp_path):
    class Refusing(BackendWrapper):
        def delete(self, name):
            if name.endswith("keep"):
                raise BackendError("refused %s" % name)
            return self.inner.delete(name)
    local = LocalBackend(str(tmp_path))
    local.put("gc/a", b"")
    local.put("gc/keep", b"")
    with pytest.raises(BackendError, match="refused gc/keep"):
        RetryingBackend(Refusing(local)).delete_many(["gc/a", "gc/keep"])
    assert [info.name for info in local.list("")] == ["gc/keep"]
