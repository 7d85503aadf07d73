"""LocalBackend's page-cache handling, and what importing the repository package costs."""
import os
import subprocess
import sys

from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import backend as backend_module
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.backend import LocalBackend


def test_a_put_object_is_synced_then_its_pages_are_dropped(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_fadvise = os.fsync, os.posix_fadvise
    monkeypatch.setattr(backend_module.os, "fsync", lambda fd: (calls.append(("fsync", fd)), real_fsync(fd))[1])
    monkeypatch.setattr(backend_module.os, "posix_fadvise",
                        lambda fd, offset, length, advice: (calls.append(("fadvise", fd, offset, length, advice)),
                                                            real_fadvise(fd, offset, length, advice))[1])
    LocalBackend(str(tmp_path)).put("chunks/ab/abcd", b"x" * 8192)
    file_fd = calls[0][1]
    assert calls[:2] == [("fsync", file_fd), ("fadvise", file_fd, 0, 0, os.POSIX_FADV_DONTNEED)]
    assert [call[0] for call in calls[2:]] == ["fsync"]         # then the directory
    assert (tmp_path / "chunks" / "ab" / "abcd").read_bytes() == b"x" * 8192


def test_without_fsync_nothing_is_dropped(tmp_path, monkeypatch):
    advice = []
    monkeypatch.setattr(backend_module.os, "posix_fadvise", lambda *args: advice.append(args))
    LocalBackend(str(tmp_path), fsync=False).put("config", b"{}")
    assert advice == []


def test_importing_the_repository_package_does_not_import_boto3():
    code = ("import sys; import ansible_collections.blockvault.vsphere.plugins.module_utils.repo as repo; "
            "repo.open_backend(sys.argv[1]); print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
    out = subprocess.run([sys.executable, "-c", code, "/tmp/unused-local-repo"], env=env, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "[]"
