"""backup_export: options translated into ExportRequest / ExportSelector, and the listen rule's failure."""
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import export as ops_export
from ansible_collections.blockvault.vsphere.plugins.modules import backup_export

STARTED = {"changed": True, "export": {"name": "db01-test"}, "uris": {"2000": "nbds://192.0.2.15:10900/"},
           "pids": [4242], "cleaned": [], "warnings": [], "diff": {"before": {}, "after": {}}}


def test_present_builds_the_request_with_disks_overlay_and_tls(run_module, ops_call, tmp_path):
    psk = tmp_path / "nbd.psk"
    psk.write_text("restore:0123456789abcdef\n")
    start = ops_call(backup_export.ops_export, "start_export", result=STARTED)
    outcome, result = run_module(backup_export, dict(repository="/srv/repo", passphrase="pw", name="db01",
                                                     before="2026-12-01T00:00:00Z", disks=[2000, "Hard disk 2"],
                                                     export_name="db01-test", writable=True, listen="tcp",
                                                     listen_address="192.0.2.15", listen_port=10900,
                                                     tls_psk_file=str(psk), tls_username="restore"))
    assert outcome == "exit" and result["uris"] == STARTED["uris"] and result["pids"] == [4242]
    request = start.kwargs["request"]
    assert request.source.vm_name == "db01" and request.source.restore_point == "latest"
    assert request.source.before == "2026-12-01T00:00:00Z"
    assert request.disks == ("2000", "Hard disk 2") and request.writable is True and request.name == "db01-test"
    assert request.listen == ops_export.Listen(kind="tcp", address="192.0.2.15", port=10900, tls_psk_file=str(psk),
                                               tls_username="restore")
    assert start.kwargs["endpoints"].repo.location == "/srv/repo" and start.kwargs["settings"].check is False


def test_a_public_address_without_tls_fails_naming_the_address_and_what_to_do(run_module, ops_call):
    start = ops_call(backup_export.ops_export, "start_export", result=STARTED)
    outcome, result = run_module(backup_export, dict(repository="/srv/repo", name="db01", listen="tcp",
                                                     listen_address="0.0.0.0"))
    assert outcome == "fail" and start.calls == []
    assert "0.0.0.0 is not a loopback address" in result["msg"] and "tls_psk_file" in result["msg"]
    assert result["error_class"] == "ConfigurationError"


def test_absent_stops_by_export_name_in_check_mode_too(run_module, ops_call):
    stop = ops_call(backup_export.ops_export, "stop_exports",
                    result={"changed": True, "stopped": ["db01-test"], "cleaned": [], "diff": {"before": {}, "after": {}}})
    outcome, result = run_module(backup_export, dict(repository="/srv/repo", export_name="db01-test", state="absent"),
                                 check_mode=True)
    assert outcome == "exit" and result["stopped"] == ["db01-test"]
    assert stop.kwargs == {"selector": ops_export.ExportSelector(name="db01-test", restore_point="latest"), "check": True}
