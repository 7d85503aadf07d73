"""Harness for the module unit tests: module args the ansible-core 2.19 way, exit_json/fail_json caught.

``run_module(module, args, check_mode=False, diff=False)`` runs ``module.main()`` and returns
``("exit"|"fail", result)``. ``ops_call(monkeypatch, ops_module, name, ...)`` replaces one operation
with a recorder. The environment variables the modules read are cleared for every test.
"""
import contextlib
import inspect
import json

import pytest

from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19: the pre-2.19 pattern
    @contextlib.contextmanager
    def patch_module_args(args=None):
        from unittest import mock
        payload = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()
        with mock.patch.object(basic, "_ANSIBLE_ARGS", payload):
            yield

ENV_READ_BY_MODULES = (
    "VMWARE_HOST", "VMWARE_PORT", "VMWARE_USER", "VMWARE_PASSWORD", "VMWARE_VALIDATE_CERTS", "VMWARE_CA_BUNDLE",
    "VDDK_LIBDIR", "VDDK_THUMBPRINT",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL", "BLOCKVAULT_PASSPHRASE",
)


class AnsibleExitJson(Exception):
    """exit_json was called; ``result`` holds its keyword arguments."""

    def __init__(self, result):
        super().__init__("exit_json")
        self.result = result


class AnsibleFailJson(Exception):
    """fail_json was called; ``result`` holds msg, exception and the other keyword arguments."""

    def __init__(self, result):
        super().__init__("fail_json: %s" % result.get("msg"))
        self.result = result


def _exit_json(self, **kwargs):
    raise AnsibleExitJson(kwargs)


def _fail_json(self, msg, **kwargs):
    kwargs["msg"] = msg
    kwargs["failed"] = True
    raise AnsibleFailJson(kwargs)


@pytest.fixture
def module_args():
    """The context manager that exposes module args to AnsibleModule (ansible-core's own, or the fallback)."""
    return patch_module_args


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ENV_READ_BY_MODULES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def run_module(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)

    def run(module, args, check_mode=False, diff=False):
        args = dict(args)
        args["_ansible_check_mode"] = check_mode
        args["_ansible_diff"] = diff
        with patch_module_args(args):
            try:
                module.main()
            except AnsibleExitJson as done:
                return "exit", done.result
            except AnsibleFailJson as failed:
                return "fail", failed.result
        raise AssertionError("the module returned without calling exit_json or fail_json")

    return run


class OpsRecorder:
    """Stands in for one ops function: records each call's keyword arguments, returns or raises as told.

    Each call is bound to the real function's signature, so a module that drifts from the ops contract fails here.
    """

    def __init__(self, real, result=None, error=None):
        self.signature = inspect.signature(real)
        self.calls = []
        self.result = result
        self.error = error

    def __call__(self, *args, **kwargs):
        if args:
            raise AssertionError("modules must call ops with keyword arguments only (got %r)" % (args,))
        self.signature.bind(**kwargs)
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return self.result

    @property
    def kwargs(self):
        if len(self.calls) != 1:
            raise AssertionError("expected one call, got %d" % len(self.calls))
        return self.calls[0]


@pytest.fixture
def ops_call(monkeypatch):
    def install(ops_module, name, result=None, error=None):
        recorder = OpsRecorder(getattr(ops_module, name), result=result, error=error)
        monkeypatch.setattr(ops_module, name, recorder)
        return recorder

    return install


@pytest.fixture
def vddk_dir(tmp_path):
    path = tmp_path / "vmware-vix-disklib-distrib"
    (path / "lib64").mkdir(parents=True)
    return str(path)


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "repository.key"
    path.write_bytes(b"\x01" * 32)
    return str(path)
