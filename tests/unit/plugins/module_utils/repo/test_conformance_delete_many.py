"""Conformance suite, the batch delete (``delete_many``): every test runs against the local backend and real moto and
SeaweedFS S3 servers (the conftest's ``backend`` fixture)."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import BackendError


def _s3_inner(backend):
    """The S3Backend inside open_backend's wrappers (None for a local backend)."""
    while hasattr(backend, "inner"):
        backend = backend.inner
    return backend if hasattr(backend, "client") else None


def test_backend_delete_many(backend):
    backend.put("chunks/ab/one", b"1")
    backend.put("chunks/ab/two", b"2")
    backend.put("chunks/cd/three", b"3")
    backend.put("locks/x", b"")
    backend.delete_many([])                                    # nothing to do: no request, no error
    # absent names (never written, or deleted twice in the same call) are no error, as for delete
    backend.delete_many(iter(["chunks/ab/one", "chunks/ab/missing", "chunks/cd/three", "chunks/cd/three", "gc/none"]))
    assert sorted(info.name for info in backend.list("")) == ["chunks/ab/two", "locks/x"]
    with pytest.raises(BackendError, match="Invalid object name"):
        backend.delete_many(["chunks/ab/two", "../etc/passwd"])
    assert backend.max_delete_batch == (1000 if _s3_inner(backend) is not None else 1)


def test_backend_delete_many_more_than_one_request(backend):
    """More names than one DeleteObjects takes (1,000): every one is deleted, in two requests on S3."""
    names = ["chunks/%02x/%064x" % (n % 256, n) for n in range(1100)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda name: backend.put(name, b"x"), names))
    backend.put("locks/kept", b"")
    s3 = _s3_inner(backend)
    requests = []
    if s3 is not None:
        real = s3.client.delete_objects
        s3.client.delete_objects = lambda **kwargs: requests.append(len(kwargs["Delete"]["Objects"])) or real(**kwargs)
    backend.delete_many(names + ["chunks/00/absent"])
    assert [info.name for info in backend.list("")] == ["locks/kept"]
    assert requests == ([1000, 101] if s3 is not None else [])


@pytest.mark.parametrize("code, transient", [("AccessDenied", False), ("InternalError", True)])
def test_backend_delete_many_per_key_error_names_the_key(backend, code, transient):
    """S3 answers DeleteObjects with a per-key Errors list: a key that failed is not deleted and the BackendError names
    it; NoSuchKey counts as deleted; a transient failure is retried (the retry wrapper) and then succeeds."""
    s3 = _s3_inner(backend)
    if s3 is None:
        pytest.skip("per-key errors are S3's (a local delete fails as a whole)")
    for name in ("chunks/ab/one", "chunks/ab/two", "chunks/cd/three"):
        backend.put(name, b"x")
    real = s3.client.delete_objects
    failures = iter([code])

    def refusing(**kwargs):
        """Withholds chunks/ab/two from the request once and reports it failed (and a gone key as NoSuchKey)."""
        refused = next(failures, None)
        objects = kwargs["Delete"]["Objects"]
        key = s3.prefix + "chunks/ab/two"
        if refused is None:
            return real(**kwargs)
        answer = real(**dict(kwargs, Delete=dict(kwargs["Delete"], Objects=[o for o in objects if o["Key"] != key])))
        answer["Errors"] = [{"Key": key, "Code": refused, "Message": "injected"},
                            {"Key": s3.prefix + "chunks/ab/gone", "Code": "NoSuchKey", "Message": "absent"}]
        return answer
    s3.client.delete_objects = refusing
    if transient:
        backend.delete_many(["chunks/ab/one", "chunks/ab/two", "chunks/ab/gone"])     # retried whole: all gone
        assert [info.name for info in backend.list("chunks/")] == ["chunks/cd/three"]
        return
    with pytest.raises(BackendError, match="could not delete 1 of 3 objects .*chunks/ab/two: AccessDenied") as failed:
        backend.delete_many(["chunks/ab/one", "chunks/ab/two", "chunks/ab/gone"])
    assert not failed.value.transient and "bucket policy" in failed.value.hint
    assert sorted(info.name for info in backend.list("chunks/")) == ["chunks/ab/two", "chunks/cd/three"]
