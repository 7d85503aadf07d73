# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options that locate and open a backup repository; mirrors repository_argument_spec() in module_utils/_module.py."""

from __future__ import annotations


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
requirements:
  - python >= 3.11
  - cryptography
  - zstandard
  - jsonschema
  - boto3 (for V(s3://) repositories)
  - pynacl (optional; opening a passphrase repository derives its key about a third faster)
options:
  repository:
    description:
      - Where the repository is, a local directory (NFS mounts included) or V(s3://bucket/prefix).
      - Needed by every operation on a repository.
    type: str
  s3_endpoint_url:
    description:
      - URL of an S3-compatible service (MinIO, Ceph RGW, ...) for V(s3://) repositories. Leave unset for AWS S3.
      - When not given for an V(s3://) repository, the environment variable E(AWS_ENDPOINT_URL) is used. A local
        repository ignores the E(AWS_*) variables of this and the next options.
    type: str
  region:
    description:
      - Region of the S3 bucket.
      - When not given, the environment variables E(AWS_REGION) then E(AWS_DEFAULT_REGION) are used.
    type: str
  aws_access_key:
    description:
      - Access key ID for S3.
      - When not given, the environment variable E(AWS_ACCESS_KEY_ID) is used, then boto3's own credential chain
        (profile, instance role).
    type: str
  aws_secret_key:
    description:
      - Secret access key for S3.
      - When not given, the environment variable E(AWS_SECRET_ACCESS_KEY) is used, then boto3's own credential chain.
    type: str
  aws_session_token:
    description:
      - Session token of temporary S3 credentials.
      - When not given, the environment variable E(AWS_SESSION_TOKEN) is used.
    type: str
  s3_validate_certs:
    description:
      - Verify the TLS certificate of the S3 endpoint.
    type: bool
    default: true
  object_lock_days:
    description:
      - Write the backup data (chunks, disk indexes, manifests) with an S3 Object Lock retention of this many days,
        in GOVERNANCE mode; the bucket must have Object Lock enabled. V(s3://) repositories only; unset means no
        retention is set.
    type: int
  passphrase:
    description:
      - Passphrase that opens the repository's key.
      - When neither O(passphrase) nor O(key_file) is given, the environment variable E(BLOCKVAULT_PASSPHRASE) is used.
      - An unencrypted repository needs neither.
      - Mutually exclusive with O(key_file).
    type: str
  key_file:
    description:
      - Path of a key file that opens the repository's key (instead of a passphrase).
      - Mutually exclusive with O(passphrase).
    type: path
  key_agent:
    description:
      - Socket of a key agent started by M(blockvault.vsphere.backup_key_agent) earlier in the play. The repository's
        key is asked there first, so a play of many tasks derives it from the passphrase once; a task that opens
        the repository with O(passphrase) or O(key_file) gives it to the agent. The agent holds keys in memory only.
      - When not given, the environment variable E(BLOCKVAULT_KEY_AGENT) is used.
    type: path
"""
