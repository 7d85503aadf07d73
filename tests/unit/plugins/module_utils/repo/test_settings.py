"""RepositorySettings: validation messages, the S3 view an S3Backend takes, no secret in a repr."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.settings import RepositorySettings, S3Settings


def test_s3_view_carries_every_s3_option():
    settings = RepositorySettings("s3://bucket/prefix", passphrase="pass phrase", s3_endpoint_url="http://127.0.0.1:9000",
                                  region="eu-west-3", access_key="AK", secret_key="SK-secret", session_token="ST-secret",
                                  object_lock_days=7, validate_certs=False, object_lock_mode="COMPLIANCE")
    assert settings.s3 == S3Settings(endpoint_url="http://127.0.0.1:9000", region="eu-west-3", access_key="AK",
                                     secret_key="SK-secret", session_token="ST-secret", object_lock_days=7,
                                     object_lock_mode="COMPLIANCE", verify_tls=False)
    for text in (repr(settings), repr(settings.s3)):
        assert "secret" not in text and "pass phrase" not in text


@pytest.mark.parametrize("options, message", [
    (dict(object_lock_days=3), "object_lock_days applies to S3 repositories only, not to /srv/repo."),
    (dict(s3_endpoint_url="http://s3"), "s3_endpoint_url and object_lock_days apply to s3:// repositories only, not /srv/repo."),
    (dict(s3_endpoint_url="http://s3", object_lock_days=3),
     "s3_endpoint_url and object_lock_days apply to s3:// repositories only, not /srv/repo."),
])
def test_s3_options_on_a_local_repository_are_refused(options, message):
    with pytest.raises(ConfigurationError) as caught:
        RepositorySettings("/srv/repo", **options)
    assert str(caught.value) == message


def test_storage_class_is_checked_and_reaches_the_s3_view():
    assert RepositorySettings("s3://bucket/prefix", storage_class="STANDARD_IA").s3.storage_class == "STANDARD_IA"
    with pytest.raises(ConfigurationError) as caught:
        RepositorySettings("s3://bucket/prefix", storage_class="DEEP_ARCHIVE")
    assert str(caught.value) == ("storage_class 'DEEP_ARCHIVE': use one of STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, "
                                 "GLACIER_IR (archive tiers that need a restore request before a read cannot hold chunks).")
    with pytest.raises(ConfigurationError, match="storage_class applies to S3 repositories only, not to /srv/repo."):
        RepositorySettings("/srv/repo", storage_class="STANDARD_IA")
