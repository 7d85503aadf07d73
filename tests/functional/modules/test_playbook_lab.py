"""The collection as a user runs it: ansible-playbook (AnsiballZ packaging of the engine, the action group in
module_defaults, async with status-file polling) against the lab."""
import hashlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.lab

ROOT = pathlib.Path(__file__).resolve().parents[3]
PLAYBOOK = pathlib.Path(__file__).resolve().parent / "playbooks" / "backup_async_restore.yml"


def test_backup_in_the_background_then_validate_and_restore(lab, tmp_path):
    outcome_file = tmp_path / "outcome.json"
    image = tmp_path / "disk1.raw"
    extra = {"repository": str(tmp_path / "repo"), "passphrase": "correct horse battery staple",
             "status_file": str(tmp_path / "status.json"), "image": str(image), "outcome_file": str(outcome_file),
             "ansible_python_interpreter": sys.executable}
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "build" / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"), ANSIBLE_ASYNC_DIR=str(tmp_path / "async"),
               XDG_STATE_HOME=str(tmp_path / "state"), **lab.env())
    done = subprocess.run([str(pathlib.Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
                           "-e", json.dumps(extra), str(PLAYBOOK)], env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    outcome = json.loads(outcome_file.read_text())
    assert outcome["state"] == "succeeded" and outcome["modes"] == ["full", "full"] and outcome["validated"] is True
    assert outcome["restored"] == outcome["recorded"]
    with open(image, "rb") as raw:
        assert hashlib.file_digest(raw, "sha256").hexdigest() == lab.checksum("lab-vm1", 1)
    assert "correct horse battery staple" not in done.stdout
