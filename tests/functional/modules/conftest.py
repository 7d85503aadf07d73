"""Fixtures of the module functional tests: the S3 servers (moto and SeaweedFS, once per session; labkit.s3servers),
imported here so that the tests can use them."""
from labkit.s3servers import moto_server, s3_server, seaweedfs_server  # noqa: F401  pylint: disable=unused-import
