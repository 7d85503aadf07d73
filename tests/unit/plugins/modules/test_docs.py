"""Documentation of the modules: ansible-doc renders it, it matches the argument specs, secrets are no_log."""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from ansible.module_utils import basic

from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import is_restore_point_id
from ansible_collections.blockvault.vsphere.plugins.modules import (
    backup_copy, backup_info, backup_key_agent, backup_prune, backup_report, backup_repository, backup_restore_point,
    backup_validate, file_restore, vm_backup, vm_restore,
)

MODULES = {
    "backup_copy": backup_copy, "backup_info": backup_info, "backup_key_agent": backup_key_agent,
    "backup_prune": backup_prune, "backup_report": backup_report, "backup_repository": backup_repository,
    "backup_restore_point": backup_restore_point, "backup_validate": backup_validate, "file_restore": file_restore,
    "vm_backup": vm_backup, "vm_restore": vm_restore,
}
# anything that looks like the start of a run id or restore point id in the docs
ID_LIKE = re.compile(r"\b\d{8}T\d{6}[0-9A-Za-z.\-]*")
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
ROOT = pathlib.Path(__file__).resolve().parents[4]
ANSIBLE_DOC = pathlib.Path(sys.executable).with_name("ansible-doc")
SECRETS = {"password", "aws_secret_key", "aws_session_token", "passphrase", "new_passphrase"}
# validate-modules' heuristic (ansible-test sanity): such names need no_log set one way or the other
POTENTIAL_SECRET = re.compile(r"(?:pass(?!ive)|secret|token|key)", re.I)
NOT_SECRET_SUFFIXES = ("_count", "_type", "_alg", "_algorithm", "_timeout", "_name", "_comment", "_bits", "_id",
                       "_identifier", "_period", "_file", "_filename")


class _SpecCaptured(Exception):
    def __init__(self, kwargs):
        super().__init__("argument spec captured")
        self.kwargs = kwargs


def _capture_init(self, *args, **kwargs):
    raise _SpecCaptured(kwargs)


def argument_spec_of(module, monkeypatch, module_args):
    """The spec the module hands to AnsibleModule (the way validate-modules reads it)."""
    monkeypatch.setattr(basic.AnsibleModule, "__init__", _capture_init)
    with module_args({}):
        with pytest.raises(_SpecCaptured) as captured:
            module.main()
    return captured.value.kwargs


def _ansible_doc(*args):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "build" / "collections"), ANSIBLE_NOCOLOR="1")
    names = ["blockvault.vsphere.%s" % name for name in sorted(MODULES)]
    return subprocess.run([str(ANSIBLE_DOC), "-t", "module"] + list(args) + names, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def docs():
    done = _ansible_doc("--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_ansible_doc_renders_every_module():
    done = _ansible_doc()
    assert done.returncode == 0, done.stderr
    assert "ERROR" not in done.stderr and "WARNING" not in done.stderr, done.stderr
    for name in MODULES:
        assert "> MODULE blockvault.vsphere.%s " % name in done.stdout
    assert done.stdout.count("EXAMPLES:") == len(MODULES)
    assert done.stdout.count("RETURN VALUES:") == len(MODULES)


def _compare(path, documented, specified, problems):
    if set(documented) != set(specified):
        only_documented = sorted(set(documented) - set(specified))
        only_specified = sorted(set(specified) - set(documented))
        problems.append("%s: documented only %s, specified only %s" % (path, only_documented, only_specified))
    for name in sorted(set(documented) & set(specified)):
        doc, spec = documented[name], specified[name]
        for field, fallback in (("type", "str"), ("default", None), ("required", False), ("choices", None), ("elements", None)):
            if doc.get(field, fallback) != spec.get(field, fallback):
                problems.append("%s.%s: %s documented %r, specified %r" % (path, name, field, doc.get(field, fallback),
                                                                           spec.get(field, fallback)))
        if doc.get("suboptions") or spec.get("options"):
            _compare("%s.%s" % (path, name), doc.get("suboptions") or {}, spec.get("options") or {}, problems)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_documentation_matches_the_argument_spec(name, docs, monkeypatch, module_args):
    doc = docs["blockvault.vsphere.%s" % name]
    spec = argument_spec_of(MODULES[name], monkeypatch, module_args)["argument_spec"]
    problems = []
    _compare(name, doc["doc"]["options"], spec, problems)
    assert problems == []
    assert doc["examples"].strip() and doc["return"]
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_secrets_are_no_log_and_key_like_options_say_so(name, monkeypatch, module_args):
    spec = argument_spec_of(MODULES[name], monkeypatch, module_args)["argument_spec"]
    secret = set(option for option, definition in spec.items() if definition.get("no_log"))
    assert secret == SECRETS & set(spec)
    for option, definition in spec.items():
        if POTENTIAL_SECRET.search(option) and not option.endswith(NOT_SECRET_SUFFIXES):
            assert "no_log" in definition, "%s.%s needs an explicit no_log" % (name, option)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_supports_check_mode(name, monkeypatch, module_args):
    assert argument_spec_of(MODULES[name], monkeypatch, module_args)["supports_check_mode"] is True


@pytest.mark.parametrize("name", sorted(MODULES))
def test_ids_in_the_docs_have_the_shape_real_ones_have(name):
    """A sample id a user copies into a task must be one the engine accepts: a restore point id or a run id."""
    module = MODULES[name]
    text = module.DOCUMENTATION + module.EXAMPLES + module.RETURN
    odd = [token for token in ID_LIKE.findall(text) if not (is_restore_point_id(token) or RUN_ID.match(token))]
    assert odd == []
