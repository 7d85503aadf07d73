"""The shared wrapper (_module.py): settings from options and environment, error translation, secrets."""
import io
import json
import sys

import pytest

from ansible.module_utils import basic

from ansible_collections.blockvault.vsphere.plugins.module_utils import errors
from ansible_collections.blockvault.vsphere.plugins.module_utils._module import disk_reference
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops.settings import (
    RepositorySettings, VddkSettings, VSphereSettings,
)
from ansible_collections.blockvault.vsphere.plugins.modules import backup_info, backup_repository, vm_backup

SECRETS = {
    "password": "vc-Secret-5417",
    "aws_secret_key": "aws-Secret-9921",
    "aws_session_token": "aws-Token-3380",
    "passphrase": "repo-Passphrase-7713",
}

BACKUP_RESULT = {
    "changed": True,
    "restore_point": {"id": "r1", "vm": "web01", "created": "2026-11-26T08:30:02Z"},
    "disks": [], "bytes_read": 0, "bytes_written": 0, "duration": 1.0, "throughput_mbps": 0.0,
}


def backup_args(vddk_dir, **extra):
    args = dict(hostname="vc.example.com", username="backup@vsphere.local", password="vc-pass-1", vddk_libdir=vddk_dir,
                repository="/srv/repo", name="web01")
    args.update(extra)
    return args


# -- settings built from options and environment --------------------------------------------------------------

def test_settings_from_options(run_module, ops_call, vddk_dir, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    call = ops_call(vm_backup.ops_backup, "backup_vm", result=BACKUP_RESULT)
    thumbprint = ":".join(["AB"] * 20)
    outcome = run_module(vm_backup, backup_args(
        vddk_dir, port=8443, validate_certs=False, ca_bundle=str(ca), vddk_thumbprint=thumbprint,
        transports="hotadd:nbd", repository="s3://bucket/prefix", s3_endpoint_url="https://minio:9000",
        region="eu-west-1", aws_access_key="AKIA1", aws_secret_key="sk", aws_session_token="st",
        object_lock_days=7, s3_validate_certs=False, passphrase="repo-pass-1"))[0]
    assert outcome == "exit"
    endpoints = call.kwargs["endpoints"]
    assert endpoints.vsphere == VSphereSettings(host="vc.example.com", username="backup@vsphere.local", password="vc-pass-1",
                                                port=8443, validate_certs=False, ca_bundle=str(ca))
    assert endpoints.vddk == VddkSettings(libdir=vddk_dir, thumbprint=thumbprint, transports="hotadd:nbd", config_file=None)
    assert endpoints.repo == RepositorySettings(location="s3://bucket/prefix", passphrase="repo-pass-1", key_file=None,
                                                s3_endpoint_url="https://minio:9000", region="eu-west-1", access_key="AKIA1",
                                                secret_key="sk", session_token="st", object_lock_days=7, validate_certs=False)


def test_vsphere_vddk_and_aws_environment_fallbacks(run_module, ops_call, vddk_dir, monkeypatch, tmp_path):
    ca = tmp_path / "env-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    thumbprint = ":".join(["0F"] * 20)
    monkeypatch.setenv("VMWARE_CA_BUNDLE", str(ca))
    monkeypatch.setenv("VDDK_LIBDIR", vddk_dir)
    monkeypatch.setenv("VDDK_THUMBPRINT", thumbprint)
    monkeypatch.setenv("VMWARE_HOST", "env-vc")
    monkeypatch.setenv("VMWARE_PORT", "9443")
    monkeypatch.setenv("VMWARE_USER", "env-user")
    monkeypatch.setenv("VMWARE_PASSWORD", "env-pw")
    monkeypatch.setenv("VMWARE_VALIDATE_CERTS", "false")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-ak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-sk")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-st")
    monkeypatch.setenv("AWS_REGION", "env-region")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://env-endpoint")
    call = ops_call(vm_backup.ops_backup, "backup_vm", result=BACKUP_RESULT)
    outcome = run_module(vm_backup, dict(repository="s3://b/p", name="web01"))[0]
    assert outcome == "exit"
    endpoints = call.kwargs["endpoints"]
    assert endpoints.vsphere == VSphereSettings(host="env-vc", username="env-user", password="env-pw", port=9443,
                                                validate_certs=False, ca_bundle=str(ca))
    assert endpoints.vddk == VddkSettings(libdir=vddk_dir, thumbprint=thumbprint)
    repo = endpoints.repo
    assert (repo.access_key, repo.secret_key, repo.session_token, repo.region, repo.s3_endpoint_url) == (
        "env-ak", "env-sk", "env-st", "env-region", "https://env-endpoint")


def test_aws_variables_set_for_other_tools_leave_a_local_repository_alone(run_module, ops_call, vddk_dir, monkeypatch):
    # found running the user guide's examples with an S3 endpoint in the environment: a local repository was refused
    # for "s3_endpoint_url" nobody gave it
    for name, value in (("AWS_ENDPOINT_URL", "https://env-endpoint"), ("AWS_REGION", "env-region"),
                        ("AWS_ACCESS_KEY_ID", "env-ak"), ("AWS_SECRET_ACCESS_KEY", "env-sk")):
        monkeypatch.setenv(name, value)
    call = ops_call(vm_backup.ops_backup, "backup_vm", result=BACKUP_RESULT)
    assert run_module(vm_backup, backup_args(vddk_dir, repository="/srv/repo"))[0] == "exit"
    repo = call.kwargs["endpoints"].repo
    assert (repo.location, repo.s3_endpoint_url, repo.region, repo.access_key, repo.secret_key) == (
        "/srv/repo", None, None, None, None)


def test_options_win_over_environment(run_module, ops_call, vddk_dir, monkeypatch):
    monkeypatch.setenv("VMWARE_HOST", "env-vc")
    monkeypatch.setenv("AWS_REGION", "env-region")
    call = ops_call(vm_backup.ops_backup, "backup_vm", result=BACKUP_RESULT)
    run_module(vm_backup, backup_args(vddk_dir, repository="s3://b/p", region="task-region"))
    assert call.kwargs["endpoints"].vsphere.host == "vc.example.com"
    assert call.kwargs["endpoints"].repo.region == "task-region"


def test_default_region_is_the_second_fallback(run_module, ops_call, vddk_dir, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "default-region")
    call = ops_call(vm_backup.ops_backup, "backup_vm", result=BACKUP_RESULT)
    run_module(vm_backup, backup_args(vddk_dir, repository="s3://b/p"))
    assert call.kwargs["endpoints"].repo.region == "default-region"


@pytest.fixture
def listing(ops_call):
    """backup_info's listing: the repository settings and the restore points; returns the list recorder."""
    ops_call(backup_info.ops_repository, "show_repository", result={"changed": False, "repository": {"location": "/srv/repo"}})
    return ops_call(backup_info.ops_info, "list_restore_points", result={"changed": False, "vms": {}, "count": 0, "warnings": []})


def test_passphrase_from_environment_when_no_key_given(run_module, listing, monkeypatch):
    monkeypatch.setenv("BLOCKVAULT_PASSPHRASE", "env-passphrase")
    call = listing
    run_module(backup_info, dict(repository="/srv/repo"))
    assert call.kwargs["repo"].passphrase == "env-passphrase"
    assert call.kwargs["repo"].key_file is None


def test_explicit_key_file_wins_over_environment_passphrase(run_module, listing, monkeypatch, key_file):
    monkeypatch.setenv("BLOCKVAULT_PASSPHRASE", "env-passphrase")
    call = listing
    outcome = run_module(backup_info, dict(repository="/srv/repo", key_file=key_file))[0]
    assert outcome == "exit"
    assert (call.kwargs["repo"].passphrase, call.kwargs["repo"].key_file) == (None, key_file)


def test_explicit_passphrase_wins_over_environment(run_module, listing, monkeypatch):
    monkeypatch.setenv("BLOCKVAULT_PASSPHRASE", "env-passphrase")
    call = listing
    run_module(backup_info, dict(repository="/srv/repo", passphrase="task-passphrase"))
    assert call.kwargs["repo"].passphrase == "task-passphrase"


def test_passphrase_and_key_file_are_mutually_exclusive(run_module, listing, key_file):
    call = listing
    outcome, result = run_module(backup_info, dict(repository="/srv/repo", passphrase="p", key_file=key_file))
    assert outcome == "fail"
    assert result["msg"] == "parameters are mutually exclusive: passphrase|key_file"
    assert call.calls == []


def test_invalid_settings_fail_before_the_operation(run_module, ops_call, tmp_path):
    call = ops_call(vm_backup.ops_backup, "backup_vm", result=BACKUP_RESULT)
    missing = str(tmp_path / "no-vddk")
    outcome, result = run_module(vm_backup, backup_args(missing))
    assert outcome == "fail"
    assert result["msg"] == "vddk_libdir %s is not a directory: unpack VDDK there or fix the path." % missing
    assert (result["error_class"], result["phase"]) == ("ConfigurationError", "configuration")
    assert call.calls == []


def test_missing_hostname_names_the_option_and_the_variable(run_module, ops_call, vddk_dir):
    ops_call(vm_backup.ops_backup, "backup_vm", result=BACKUP_RESULT)
    args = backup_args(vddk_dir)
    del args["hostname"]
    outcome, result = run_module(vm_backup, args)
    assert outcome == "fail"
    assert result["msg"] == "hostname is empty: give the vCenter host name (or set VMWARE_HOST)."


def test_missing_repository_is_a_configuration_error(run_module, listing):
    outcome, result = run_module(backup_info, {})
    assert outcome == "fail" and listing.calls == []
    assert result["msg"] == "repository is empty: give a directory or s3://bucket/prefix."
    assert result["error_class"] == "ConfigurationError"


# -- error translation ----------------------------------------------------------------------------------------

def test_engine_error_becomes_a_failure_with_its_context(run_module, ops_call, vddk_dir):
    error = errors.VddkError("Reading disk 2000 failed: lost connection.", disk="2000", vm="web01", run_id="r7",
                             hint="Check the network path to the ESXi host.")
    ops_call(vm_backup.ops_backup, "backup_vm", error=error)
    outcome, result = run_module(vm_backup, backup_args(vddk_dir))
    assert outcome == "fail"
    assert result["msg"] == "Reading disk 2000 failed: lost connection. Check the network path to the ESXi host."
    assert (result["error_class"], result["phase"], result["vm"], result["disk"], result["run_id"]) == (
        "VddkError", "vddk", "web01", "2000", "r7")
    assert result["changed"] is False
    assert "Traceback (most recent call last)" in result["exception"] and "VddkError" in result["exception"]


def test_missing_library_uses_missing_required_lib(run_module, ops_call, vddk_dir):
    ops_call(vm_backup.ops_backup, "backup_vm", error=errors.MissingDependencyError("pyvmomi is not installed.", library="pyvmomi"))
    outcome, result = run_module(vm_backup, backup_args(vddk_dir))
    assert outcome == "fail"
    assert result["msg"] == basic.missing_required_lib("pyvmomi") + " pyvmomi is not installed."
    assert (result["error_class"], result["phase"]) == ("MissingDependencyError", "configuration")


def test_unexpected_exception_is_reported_as_a_bug_with_class_and_traceback(run_module, ops_call, vddk_dir):
    ops_call(vm_backup.ops_backup, "backup_vm", error=KeyError("capacity"))
    outcome, result = run_module(vm_backup, backup_args(vddk_dir))
    assert outcome == "fail"
    assert result["msg"].startswith("Unexpected error KeyError: 'capacity'. This is a bug in blockvault.vsphere")
    assert result["error_class"] == "KeyError"
    assert (result["phase"], result["vm"], result["disk"], result["run_id"]) == (None, None, None, None)
    assert "KeyError" in result["exception"]


def test_result_changed_is_always_a_boolean(run_module, ops_call, vddk_dir):
    ops_call(vm_backup.ops_backup, "backup_vm", result={"restore_point": {"id": "r1"}})
    outcome, result = run_module(vm_backup, backup_args(vddk_dir))
    assert outcome == "exit" and result["changed"] is False


# -- secrets --------------------------------------------------------------------------------------------------

def _secret_args(vddk_dir):
    return backup_args(vddk_dir, repository="s3://bucket/prefix", **SECRETS)


def _assert_no_secret(result):
    text = json.dumps(result, default=str)
    for name, value in SECRETS.items():
        assert value not in text, "the %s leaked into the result" % name


@pytest.mark.parametrize("error", [
    errors.AuthenticationError("Login as backup@vsphere.local failed with password " + SECRETS["password"]),
    errors.WrongKeyError("Passphrase %s does not open the key." % SECRETS["passphrase"]),
    RuntimeError("boto said: %s / %s" % (SECRETS["aws_secret_key"], SECRETS["aws_session_token"])),
], ids=["engine-error", "wrong-key", "unexpected"])
def test_no_secret_in_failures(run_module, ops_call, vddk_dir, error):
    ops_call(vm_backup.ops_backup, "backup_vm", error=error)
    outcome, result = run_module(vm_backup, _secret_args(vddk_dir))
    assert outcome == "fail"
    _assert_no_secret(result)
    assert "********" in result["msg"]


def test_no_secret_in_results_even_when_an_operation_echoes_one(run_module, ops_call, vddk_dir):
    echoed = dict(BACKUP_RESULT, plan={"note": "opened with %s" % SECRETS["passphrase"]})
    ops_call(vm_backup.ops_backup, "backup_vm", result=echoed)
    outcome, result = run_module(vm_backup, _secret_args(vddk_dir))
    assert outcome == "exit"
    _assert_no_secret(result)
    assert result["restore_point"] == BACKUP_RESULT["restore_point"]


def test_environment_passphrase_is_masked_too(run_module, ops_call, monkeypatch):
    monkeypatch.setenv("BLOCKVAULT_PASSPHRASE", SECRETS["passphrase"])
    ops_call(backup_info.ops_info, "list_restore_points",
             error=errors.WrongKeyError("Passphrase %s does not open the key." % SECRETS["passphrase"]))
    outcome, result = run_module(backup_info, dict(repository="/srv/repo"))
    assert outcome == "fail" and result["error_class"] == "WrongKeyError"
    _assert_no_secret(result)


def test_real_module_output_holds_no_secret(ops_call, vddk_dir, monkeypatch, module_args):
    """The whole path without patched exit/fail: the JSON a controller would receive."""
    ops_call(vm_backup.ops_backup, "backup_vm",
             error=errors.SnapshotError("Snapshot failed for password %s." % SECRETS["password"], vm="web01"))
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    with module_args(_secret_args(vddk_dir)):
        with pytest.raises(SystemExit) as exited:
            vm_backup.main()
    assert exited.value.code == 1
    output = json.loads(stdout.getvalue())
    assert output["failed"] is True and output["error_class"] == "SnapshotError" and output["vm"] == "web01"
    _assert_no_secret(output)


def test_secrets_are_not_in_the_settings_repr(run_module, ops_call, vddk_dir):
    call = ops_call(vm_backup.ops_backup, "backup_vm", result=BACKUP_RESULT)
    run_module(vm_backup, _secret_args(vddk_dir))
    text = repr(call.kwargs["endpoints"].vsphere) + repr(call.kwargs["endpoints"].repo)
    for value in SECRETS.values():
        assert value not in text


def test_traceback_of_a_failure_is_scrubbed(run_module, ops_call, vddk_dir):
    def explode():
        raise ValueError("bad token " + SECRETS["aws_session_token"])
    with pytest.raises(ValueError) as raised:
        explode()
    ops_call(vm_backup.ops_backup, "backup_vm", error=raised.value)
    outcome, result = run_module(vm_backup, _secret_args(vddk_dir))
    assert outcome == "fail" and "explode" in result["exception"]
    _assert_no_secret(result)


# -- helpers --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("given, expected", [
    (2000, "2000"), ("2001", "2001"), (" 2002 ", "2002"), ("Hard disk 1", "Hard disk 1"), (None, None),
])
def test_disk_reference(given, expected):
    assert disk_reference(given) == expected


def test_every_module_accepts_the_group_defaults(run_module, ops_call):
    """One module_defaults group (group/blockvault.vsphere.vsphere) carries vSphere, VDDK and repository options
    for every module, so a repository-only module must accept, and ignore, the vSphere and VDDK ones."""
    call = ops_call(backup_repository.ops_repository, "ensure_repository", result={"changed": False})
    outcome, result = run_module(backup_repository, dict(repository="/srv/repo", hostname="vc", username="u",
                                                         password="vc-secret-9", vddk_libdir="/opt/vddk"))
    assert outcome == "exit" and result["changed"] is False
    assert call.kwargs["repo"].location == "/srv/repo" and "vsphere" not in call.kwargs
    assert "vc-secret-9" not in repr(result)
