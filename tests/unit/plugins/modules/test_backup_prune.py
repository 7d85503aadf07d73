"""backup_prune: the policy passed exactly, check and diff mode."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import RepositorySettings
from ansible_collections.blockvault.vsphere.plugins.modules import backup_prune

RESULT = {
    "changed": True,
    "removed": [{"id": "r1", "vm": "web01", "created": "2026-11-01T08:30:02Z"},
                {"id": "r2", "vm": "web01", "created": "2026-11-02T08:30:02Z"}],
    "kept": [{"id": "r3", "vm": "web01", "created": "2026-11-03T08:30:02Z", "reasons": ["last"]}],
    "gc": {"dry_run": False, "chunks_removed": 12, "bytes_removed": 50331648},
    "diff": {"before": {"restore_points": ["r1", "r2", "r3"]}, "after": {"restore_points": ["r3"]}},
}
WITHOUT_DIFF = dict((key, value) for key, value in RESULT.items() if key != "diff")


@pytest.fixture
def prune(ops_call):
    return ops_call(backup_prune.ops_prune, "prune", result=RESULT)


def test_policy_reaches_the_operation_exactly(run_module, prune):
    outcome, result = run_module(backup_prune, dict(repository="/srv/repo", passphrase="repo-pass-1", keep_daily=7, keep_weekly=4,
                                                    keep_last=0, keep_yearly=-1))
    assert outcome == "exit"
    assert prune.kwargs == {"repo": RepositorySettings(location="/srv/repo", passphrase="repo-pass-1"),
                            "policy": {"keep_daily": 7, "keep_weekly": 4, "keep_last": 0, "keep_yearly": -1},
                            "vm": None, "gc": True, "check": False, "forget_orphans": False}
    assert result == WITHOUT_DIFF


def test_vm_and_no_gc(run_module, ops_call):
    prune = ops_call(backup_prune.ops_prune, "prune", result=dict(RESULT, gc=None))
    outcome, result = run_module(backup_prune, dict(repository="/srv/repo", keep_last=3, vm="web01", gc=False))
    assert (prune.kwargs["policy"], prune.kwargs["vm"], prune.kwargs["gc"]) == ({"keep_last": 3}, "web01", False)
    assert outcome == "exit" and result["gc"] == {}


def test_a_rule_is_required(run_module, prune):
    outcome, result = run_module(backup_prune, dict(repository="/srv/repo"))
    assert outcome == "fail"
    assert result["msg"] == ("one of the following is required: keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, "
                             "keep_yearly, forget_orphans")
    assert prune.calls == []


def test_forget_orphans_alone_reaches_the_operation(run_module, prune):
    outcome, _result = run_module(backup_prune, dict(repository="/srv/repo", forget_orphans=True))
    assert outcome == "exit"
    assert (prune.kwargs["policy"], prune.kwargs["forget_orphans"], prune.kwargs["gc"]) == ({}, True, True)


def test_check_and_diff_mode_list_what_would_go(run_module, prune):
    outcome, result = run_module(backup_prune, dict(repository="/srv/repo", keep_last=1), check_mode=True, diff=True)
    assert outcome == "exit" and prune.kwargs["check"] is True
    assert result == RESULT


def test_no_diff_outside_diff_mode(run_module, prune):
    result = run_module(backup_prune, dict(repository="/srv/repo", keep_last=1))[1]
    assert "diff" not in result


def test_nothing_to_remove_is_not_a_change(run_module, ops_call):
    ops_call(backup_prune.ops_prune, "prune", result={"changed": False, "removed": [], "kept": RESULT["kept"], "gc": None, "diff": {}})
    result = run_module(backup_prune, dict(repository="/srv/repo", keep_last=5))[1]
    assert result["changed"] is False
