"""backup_export as a user runs it: ansible-playbook (AnsiballZ: the export outlives the module's temporary payload,
so nbdkit runs from its own copy of the engine), read with nbdcopy after the module returned, stopped by a task."""
import hashlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.lab

ROOT = pathlib.Path(__file__).resolve().parents[3]
PLAYBOOK = pathlib.Path(__file__).resolve().parent / "playbooks" / "export.yml"


def test_an_export_started_by_a_playbook_serves_after_the_module_returned_and_stops(lab, tmp_path):
    outcome_file = tmp_path / "outcome.json"
    image = tmp_path / "disk1.raw"
    extra = {"repository": str(tmp_path / "repo"), "passphrase": "correct horse battery staple", "image": str(image),
             "outcome_file": str(outcome_file), "ansible_python_interpreter": sys.executable}
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / "build" / "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"), XDG_STATE_HOME=str(tmp_path / "state"), **lab.env())
    done = subprocess.run([str(pathlib.Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local",
                           "-e", json.dumps(extra), str(PLAYBOOK)], env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    outcome = json.loads(outcome_file.read_text())
    assert outcome["changed"] is True and outcome["again_changed"] is False
    assert outcome["listed"] == ["playbook"] and outcome["stopped"] == ["playbook"]
    with open(image, "rb") as raw:
        assert hashlib.file_digest(raw, "sha256").hexdigest() == lab.checksum("lab-vm1", 1)
    assert not os.path.exists(outcome["runtime_dir"])
    assert all(not os.path.exists("/proc/%d" % pid) for pid in outcome["pids"])
    assert "correct horse battery staple" not in done.stdout
