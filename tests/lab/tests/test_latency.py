"""labkit.latency: the proxy that makes each request to an S3 server cost time passes every byte unchanged, both
ways, delays requests (not the bytes streaming within one), and stops cleanly with connections open."""
import os

import boto3
import botocore.config

from labkit.latency import LatencyProxy
from labkit.s3servers import PLAIN_BUCKET, moto_server  # noqa: F401  pylint: disable=unused-import


def test_requests_pass_unchanged_through_the_proxy(moto_server):  # noqa: F811  pylint: disable=redefined-outer-name
    with LatencyProxy(int(moto_server.endpoint.rsplit(":", 1)[1]), 0.01) as proxy:
        client = boto3.client("s3", endpoint_url=proxy.endpoint, region_name=moto_server.region,
                              aws_access_key_id=moto_server.access_key, aws_secret_access_key=moto_server.secret_key,
                              config=botocore.config.Config(retries={"max_attempts": 1}))
        big = os.urandom(3 << 20)       # streams in many reads: one request, delayed once
        client.put_object(Bucket=PLAIN_BUCKET, Key="latency/big", Body=big)
        assert client.get_object(Bucket=PLAIN_BUCKET, Key="latency/big")["Body"].read() == big
        for number in range(5):
            client.put_object(Bucket=PLAIN_BUCKET, Key="latency/%d" % number, Body=b"%d" % number)
        listed = client.list_objects_v2(Bucket=PLAIN_BUCKET, Prefix="latency/")["Contents"]
        assert sorted(item["Key"] for item in listed) == ["latency/%d" % n for n in range(5)] + ["latency/big"]
        # each request delayed at least once; the big body's many reads did not each count as a request
        assert 8 <= proxy.requests < 8 + 40
    proxy.stop()        # idempotent
