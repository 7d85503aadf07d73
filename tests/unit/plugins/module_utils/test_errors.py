"""The exception tree: context, serialisation, redaction."""
from ansible_collections.blockvault.vsphere.plugins.module_utils import errors


def test_context_fills_only_unset_fields():
    err = errors.VddkTransientError("read failed", code=36, disk="2000", phase="transfer")
    err.with_context(phase="backup", vm="lab-vm1", disk="2001", run_id="r1")
    assert (err.phase, err.vm, err.disk, err.run_id) == ("transfer", "lab-vm1", "2000", "r1")
    assert err.to_dict() == {
        "msg": "read failed", "error_class": "VddkTransientError", "phase": "transfer",
        "vm": "lab-vm1", "disk": "2000", "run_id": "r1",
    }


def test_default_phase_and_hierarchy():
    err = errors.WrongKeyError("the passphrase does not open repository /srv/repo.", hint="Check it.")
    assert err.phase == "repository"
    assert isinstance(err, errors.RepositoryError) and isinstance(err, errors.BlockvaultError)
    assert str(err) == "the passphrase does not open repository /srv/repo. Check it."
    assert issubclass(errors.VddkLoadError, errors.ConfigurationError)


def test_secrets_are_redacted_from_messages():
    err = errors.VSphereError('login failed: password=hunter2 cookie vmware_soap_session="52abc"')
    text = str(err)
    assert "hunter2" not in text and "52abc" not in text
    assert errors.redact("passphrase: s3cret rest") == "passphrase: ******** rest"
