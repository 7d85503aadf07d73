"""ops.prune: check mode's figures are the real run's (a dry-run mark and sweep without the restore points pruned)."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import prune as ops_prune
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops._engine import open_repository
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import open_backend
from ansible_collections.blockvault.vsphere.tests.unit.plugins.module_utils.repo.helpers import (
    MIB, PASSPHRASE, backup, make_repo, random_disk)

GC_FIGURES = ("restore_points", "chunks_stored", "chunks_referenced", "chunks_missing", "chunks_removed", "bytes_removed",
              "indexes_removed")


@pytest.fixture
def repository(tmp_path):
    """A repository with 3 restore points of vm-a (2 of 3 MiB of their own each, plus 1 MiB shared with vm-b) and one
    of vm-b; the settings to open it."""
    location = str(tmp_path / "repo")
    repo = make_repo(open_backend(location))
    shared = random_disk(MIB, 90)
    ids = [backup(repo, "vm-a", {"2000": random_disk(2 * MIB, 91 + i), "2001": shared})[0] for i in range(3)]
    other = backup(repo, "vm-b", {"2000": shared})[0]
    repo.close()
    return RepositorySettings(location=location, passphrase=PASSPHRASE), ids, other


def test_check_mode_reports_what_the_real_run_frees(repository):
    settings, ids, other = repository
    check = ops_prune.prune(settings, {"keep_last": 1}, vm="vm vm-a", check=True)
    real = ops_prune.prune(settings, {"keep_last": 1}, vm="vm vm-a", check=False)
    assert [r["id"] for r in check["removed"]] == [r["id"] for r in real["removed"]] == ids[:2]
    assert [k["id"] for k in check["kept"]] == [k["id"] for k in real["kept"]] == [ids[2]]
    # the 2 restore points removed had 2 chunks each of their own; the shared chunk stays (vm-b and ids[2] use it)
    assert check["gc"]["chunks_removed"] == 4 and check["gc"]["bytes_removed"] > 4 * MIB
    assert {name: check["gc"][name] for name in GC_FIGURES} == {name: real["gc"][name] for name in GC_FIGURES}
    assert (check["gc"]["dry_run"], real["gc"]["dry_run"]) == (True, False)
    assert check["changed"] is real["changed"] is True
    figures = "%d chunk(s), %d bytes" % (real["gc"]["chunks_removed"], real["gc"]["bytes_removed"])
    assert check["msg"] == "would remove 2 restore point(s) (%s, %s); would keep 1 (%s); GC would free %s" % (
        ids[0], ids[1], ids[2], figures)
    assert real["msg"] == "removed 2 restore point(s) (%s, %s); kept 1 (%s); GC freed %s" % (ids[0], ids[1], ids[2], figures)
    # and nothing is left to free: the next check says so, as the next real run does
    again = ops_prune.prune(settings, {"keep_last": 1}, check=True)
    assert (again["removed"], again["gc"]["chunks_removed"], again["changed"]) == ([], 0, False)
    assert again["msg"] == "would remove 0 restore point(s); would keep 2 (%s); GC would free 0 chunk(s), 0 bytes" % (
        ", ".join(sorted([ids[2], other])))


def test_without_gc_there_is_no_estimate(repository):
    settings, ids, _other = repository
    check = ops_prune.prune(settings, {"keep_last": 2}, vm="vm vm-a", gc=False, check=True)
    assert (check["gc"], [r["id"] for r in check["removed"]]) == (None, ids[:1])
    assert check["msg"] == "would remove 1 restore point(s) (%s); would keep 2 (%s, %s)" % (ids[0], ids[1], ids[2])


def test_assuming_restore_points_gone_is_for_a_dry_run_only(repository):
    settings, ids, _other = repository
    repo = open_repository(settings)
    try:
        with pytest.raises(ConfigurationError, match="gc assume_removed is for a dry run only"):
            repo.gc(assume_removed=ids[:1])
        assert len(repo.list_restore_points()) == 4
    finally:
        repo.close()
