"""Every YAML example of README.md and docs/*.md, run against the lab (a doc example is a test case).

The examples are read from the documents themselves, fenced as ```yaml, and each is run as what it is:

- a playbook: run with ansible-playbook;
- a list of tasks: run as the tasks of a play on localhost;
- the variables of the collection's playbooks (docs/playbooks.md): given with ``-e @file`` to the playbook they are
  for (blockvault.vsphere.backup; blockvault.vsphere.dr for a DR runbook, with the settings example of its document);
- a sample of a module's result: each key must be one the module documents under RETURN;
- AWX's execution environment definition and credential type (docs/awx.md): the collection it names must be this
  one, and a backup must run with nothing but the environment variables the credential type injects.

A new kind of example fails ``test_every_example_is_of_a_kind_this_test_runs`` until this file learns to run it.

The lab stands in for the site the documents describe. Their names are kept where the lab can have them: VMs named
web01, db01, dc01 and app01 are created (web01 with an ext4 guest filesystem holding /etc/nginx/nginx.conf, changed
between its two restore points), the offsite bucket is ``offsite-backups`` on SeaweedFS with Object Lock, and the
vault variables are given. What the lab cannot have is replaced in the example's text (``LAB_TEXT``): the vCenter
host and user, the VDDK directory, the repository directory, the datacenter and networks, a restore point id, the
host a restored file goes back to. For a DR runbook, what a second site would not need (``DR_ONE_SITE``): the
restored VMs get a suffix and new identities, because the originals are in the same vCenter.
"""
import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys
import uuid

import pytest
import yaml

from labkit import REPO_ROOT
from labkit.guestfs import FsLayout, create_vm, seed_disk, write_file
from labkit.s3servers import SeaweedServer
from labkit.testing import wait_task

from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import export as ops_export

# one worker runs them all: the site (its VMs, repository and backups) is built once (make integration: --dist loadgroup)
pytestmark = [pytest.mark.lab, pytest.mark.xdist_group("doc-site")]

ANSIBLE_PLAYBOOK = pathlib.Path(sys.executable).parent / "ansible-playbook"
COLLECTIONS = REPO_ROOT / "build" / "collections"
DOCUMENTS = [REPO_ROOT / "README.md"] + sorted((REPO_ROOT / "docs").glob("*.md"))
MIB = 1 << 20
NGINX_V1 = b"worker_processes 2;  # before the change window\n"
NGINX_V2 = b"worker_processes 8;  # the change that broke it\n"
# the vault variables the examples use
VAULT = {"vault_vcenter_password": None, "vault_repository_passphrase": "doc examples passphrase",
         "repository_passphrase": "doc examples passphrase", "vault_offsite_passphrase": "offsite passphrase",
         "old_repository_passphrase": "operators passphrase of 2026-06"}
OFFSITE_BUCKET = "offsite-backups"
# the restored VMs of a DR runbook in the one-site lab
DR_ONE_SITE = {"blockvault_dr_name_suffix": "-dr", "blockvault_dr_keep_identity": False,
               "blockvault_dr_power_on_delay": 1}


@dataclasses.dataclass(frozen=True)
class Example:
    """One fenced YAML block: where it is and its text."""

    path: pathlib.Path
    line: int
    text: str

    @property
    def name(self):
        return "%s:%d" % (self.path.relative_to(REPO_ROOT), self.line)

    @property
    def data(self):
        return yaml.safe_load(self.text)


def doc_examples():
    examples = []
    for path in DOCUMENTS:
        inside, start, lines = False, 0, []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not inside and line.strip() == "```yaml":
                inside, start, lines = True, number, []
            elif inside and line.strip() == "```":
                inside = False
                examples.append(Example(path, start, "\n".join(lines) + "\n"))
            elif inside:
                lines.append(line)
    return examples


EXAMPLES = doc_examples()


def kind(example):
    """What an example is (module docstring); "unknown" for what this test cannot run."""
    try:
        data = example.data
    except yaml.YAMLError as exc:
        return "not YAML (%s)" % str(exc).replace("\n", " ")
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        if "hosts" in data[0]:
            return "playbook"
        if all(any(key.startswith(("blockvault.vsphere.", "ansible.builtin.")) for key in item) for item in data):
            return "tasks"
    if isinstance(data, dict):
        if {"version", "dependencies"} <= set(data):
            return "execution_environment"
        if {"fields", "env"} <= set(data):
            return "credential_type"
        if data and all(key.startswith("blockvault_dr_") for key in data):
            return "dr_variables"
        if data and all(key.startswith("blockvault_") for key in data):
            return "playbook_variables"
        if data and set(data) <= set(module_returns("vm_backup")):
            return "vm_backup_result"
    return "unknown"


def module_returns(module):
    source = (REPO_ROOT / "plugins" / "modules" / (module + ".py")).read_text()
    return yaml.safe_load(re.search(r'RETURN = r"""(.*?)"""', source, re.S).group(1))


def test_the_documents_have_their_examples():
    # a change of fence (```yml, indented) would silently drop examples from this test
    assert len(EXAMPLES) >= 13, [example.name for example in EXAMPLES]
    for path in DOCUMENTS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert line.strip() not in ("```yml", "``` yaml"), "%s:%d: fence YAML as ```yaml" % (path, number)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.name)
def test_every_example_is_of_a_kind_this_test_runs(example):
    what = kind(example)
    assert what != "unknown" and not what.startswith("not YAML"), "%s is %s:\n%s" % (
        example.name, "no example this test can run" if what == "unknown" else what, example.text)


class Site:
    """The lab as the documents' site: their VMs, a repository, an offsite bucket; runs examples."""

    def __init__(self, lab, si, seaweed, directory):
        self.lab, self.si, self.directory = lab, si, directory
        self.repository = directory / "repository"
        self.restored = directory / "restored"
        self.env = dict(os.environ)
        self.env.update(lab.env())
        self.env.update({
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_HOME": str(directory / "ansible-home"), "ANSIBLE_ASYNC_DIR": str(directory / "async"),
            # the offsite examples name AWS's region and bucket; boto3 reads the endpoint and keys from here
            "AWS_ENDPOINT_URL": seaweed.endpoint, "AWS_ACCESS_KEY_ID": seaweed.access_key,
            "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
            # the exports the examples start are recorded here, not in the user's ~/.local/state
            "XDG_STATE_HOME": str(directory / "state"),
        })
        if os.environ.get("BLOCKVAULT_TEST_APPLIANCE_ACCEL", "tcg") == "tcg":
            # a machine whose /dev/kvm cannot run the appliance, set up as the user guide says (section 8b)
            self.env["LIBGUESTFS_BACKEND_SETTINGS"] = "force_tcg"
        self.vault = dict(VAULT, vault_vcenter_password=lab.info["password"])
        self.vms = {}
        self.points = {}

    def lab_text(self, text):
        """The example's text with what the lab cannot have replaced (module docstring)."""
        replacements = [
            ("vcenter.example.com", self.lab.info["host"]),
            ("backup@vsphere.local", self.lab.info["user"]),
            ("/opt/vmware-vix-disklib-distrib", self.lab.env()["VDDK_LIBDIR"]),
            ("/etc/pki/vcenter-ca.pem", self.lab.info["ca_bundle"]),
            ("/mnt/backups/vsphere", str(self.repository)),
            ("/srv/backups/vsphere", str(self.repository)),
            ("/DC1/vm/prod", "/DC0/vm"),
            ("datacenter: DC1", "datacenter: DC0"),
            ("DR-Cluster", "DC0_C0"),
            ("dr-ds-01", "LocalDS_0"),
            ("DR-DC/vm/Recovered", "DC0/vm"),
            ("DR-VLAN10", "DC0_DVPG0"),
            ("20261125T220000.000000Z-...", self.points.get("app01", "")),
            ("/var/tmp/restore-web01", str(self.restored)),
            ("/srv/backups/reports/vsphere", str(self.directory / "reports")),
            ("dest: /etc/nginx/nginx.conf", "dest: %s" % (self.directory / "web01-etc-nginx" / "nginx.conf")),
            ("delegate_to: web01", "delegate_to: localhost"),
            ('before: "2026-12-03T22:00:00Z"', 'before: "%s"' % self.points["web01-v2-created"]),
        ]
        for doc_value, lab_value in replacements:
            text = text.replace(doc_value, lab_value)
        assert "example.com" not in text, text
        return text

    def playbook(self, name, playbook, *extra, check=False, expect_ok=True, env=None):
        """Run ``playbook`` (a path or a collection playbook) with extra vars files/JSON; its output. It must succeed
        (or fail, ``expect_ok=False``)."""
        args = [str(ANSIBLE_PLAYBOOK), str(playbook), "-e", json.dumps(self.vault)]
        for item in extra:
            args += ["-e", item]
        if check:
            args.append("--check")
        try:
            done = subprocess.run(args, env=dict(self.env, **(env or {})), cwd=self.directory, capture_output=True, text=True, timeout=600,
                                  check=False)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError("%s did not end within 600 s:\n%s%s" % (name, exc.stdout or "", exc.stderr or "")) from None
        output = done.stdout + done.stderr
        assert (done.returncode == 0) == expect_ok, "%s %s (%d):\n%s" % (
            name, "failed" if expect_ok else "should have failed", done.returncode, output)
        return output

    def write(self, name, text):
        path = self.directory / ("%s-%s.yml" % (re.sub(r"\W", "-", name), uuid.uuid4().hex[:6]))
        path.write_text(text)
        return path

    def labctl_checksum(self, vm, disk):
        done = subprocess.run([str(REPO_ROOT / "tests" / "lab" / "labctl"), "checksum", "--vm", vm, "--disk", str(disk)],
                              env=self.env, capture_output=True, text=True, timeout=120, check=True)
        return done.stdout.strip()


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    server = SeaweedServer.start(tmp_path_factory.mktemp("seaweed-docs"))
    try:
        server.create_bucket(OFFSITE_BUCKET, object_lock=True)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def site(lab, si, seaweed, tmp_path_factory):
    """The documents' VMs in the lab, backed up into the site's repository: web01 twice (nginx.conf changed between),
    db01, dc01 and app01 once. The VMs are destroyed at the end."""
    directory = tmp_path_factory.mktemp("doc-site")
    site = Site(lab, si, seaweed, directory)
    # web01's /etc/nginx, where a restored nginx.conf goes back: the broken one is there today
    (directory / "web01-etc-nginx").mkdir()
    (directory / "web01-etc-nginx" / "nginx.conf").write_bytes(NGINX_V2)
    try:
        site.vms["web01"] = create_vm(si, "web01", [24 * MIB])
        for name in ("db01", "dc01", "app01"):
            site.vms[name] = create_vm(si, name, [4 * MIB])
        seed_disk(lab, "web01", 0, FsLayout("ext4", files={
            "/etc/os-release": b'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\n', "/etc/hostname": b"web01\n",
            "/etc/fstab": b"LABEL=web01root / ext4 defaults 0 1\n", "/bin/sh": b"#!placeholder\n",
            "/etc/nginx/nginx.conf": NGINX_V1}, label="web01root"))
        options = dict(site.vault, blockvault_repository={"repository": str(site.repository),
                                                          "passphrase": VAULT["vault_repository_passphrase"]},
                       vm_backup_quiesce=False, vm_backup_poll_interval=1, vm_backup_status_dir=str(directory / "status"))
        site.playbook("create the site's repository", "blockvault.vsphere.repository", json.dumps(options))
        site.playbook("back up the site's VMs", "blockvault.vsphere.backup",
                      json.dumps(dict(options, blockvault_vms=["web01", "db01", "dc01", "app01"])))
        write_file(lab, "web01", 0, "/etc/nginx/nginx.conf", NGINX_V2)
        site.playbook("back up web01 again", "blockvault.vsphere.backup", json.dumps(dict(options, blockvault_vms=["web01"])))
        points = site_points(site)
        site.points.update({"app01": points["app01"][-1]["id"], "web01-v2-created": points["web01"][-1]["created"]})
        yield site
    finally:
        stop_exports(site)
        for vm in site.vms.values():
            if vm.runtime.powerState == "poweredOn":
                wait_task(vm.PowerOffVM_Task())
            wait_task(vm.Destroy_Task())
        for restored in si.content.viewManager.CreateContainerView(si.content.rootFolder, [], True).view:
            if getattr(restored, "name", "").endswith("-dr"):
                if restored.runtime.powerState == "poweredOn":
                    wait_task(restored.PowerOffVM_Task())
                wait_task(restored.Destroy_Task())


def stop_exports(site):
    """Stop what the examples left serving: the instant-access example starts an export and, as its document says,
    leaves it running for the reader (its nbdkit would serve on after the tests). Only the site's own exports."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("XDG_STATE_HOME", site.env["XDG_STATE_HOME"])
        for export in ops_export.list_exports()["exports"]:
            ops_export.stop_exports(ops_export.ExportSelector(name=export["name"]))
        assert ops_export.list_exports()["exports"] == []


def site_points(site):
    out = site.directory / ("points-%s.json" % uuid.uuid4().hex[:6])
    site.playbook("list restore points", REPO_ROOT / "tests" / "integration" / "playbooks" / "list_restore_points.yml",
                  json.dumps({"blockvault_repository": {"repository": str(site.repository),
                                                        "passphrase": VAULT["vault_repository_passphrase"]},
                              "blockvault_out": str(out)}))
    return {vm: sorted(points, key=lambda point: point["created"]) for vm, points in json.loads(out.read_text()).items()}


def as_play(tasks_text):
    return "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n" + "".join(
        "    " + line + "\n" if line else "\n" for line in tasks_text.splitlines())


RUNNABLE = [example for example in EXAMPLES if kind(example) in ("playbook", "tasks", "playbook_variables", "dr_variables")]


@pytest.mark.parametrize("example", RUNNABLE, ids=lambda example: example.name)
def test_the_example_runs_against_the_lab(site, example):
    task = example.data[0].get("name") if isinstance(example.data, list) else None
    text = site.lab_text(example.text)
    for doc_value, lab_value in SETUPS.get(task, lambda _site: {})(site).items():
        text = text.replace(doc_value, lab_value)
    what = kind(example)
    if what == "playbook":
        output = site.playbook(example.name, site.write(example.name, text))
    elif what == "tasks":
        output = site.playbook(example.name, site.write(example.name, as_play(text)))
    elif what == "playbook_variables":
        output = site.playbook(example.name, "blockvault.vsphere.backup", "@%s" % site.write(example.name, text),
                               json.dumps({"blockvault_vms": ["db01"], "vm_backup_quiesce": False}))
    else:
        # run as the document says: `-e @vars.yml -e @dr-runbook.yml`, vars.yml being its settings example
        settings = next(other for other in EXAMPLES if other.path == example.path and kind(other) == "playbook_variables")
        output = site.playbook(example.name, "blockvault.vsphere.dr",
                               "@%s" % site.write(settings.name, site.lab_text(settings.text)),
                               "@%s" % site.write(example.name, text), json.dumps(DR_ONE_SITE))
    assert "failed=0" in output, output
    CHECKS.get(task, lambda *_: None)(site, example, text)
    if what == "dr_variables":
        for vm in example.data["blockvault_dr_vms"]:
            name = vm["name"] if isinstance(vm, dict) else vm
            assert site.labctl_checksum(name + "-dr", 0) == site.labctl_checksum(name, 0), output


# What an example needs first, beyond the site (the replacements of its text it then needs), and what its text says
# it did, checked after it ran; by the name of its first task.

def rotation_repository(site):
    """A repository of its own whose operators' passphrase of 2026-06 the rotation example revokes (it also has a
    first passphrase, so that it still opens when the example has run)."""
    location = site.directory / ("rotated-%s" % uuid.uuid4().hex[:6])
    site.playbook("a repository to rotate", site.write("rotation setup", as_play(
        "- blockvault.vsphere.backup_repository:\n    repository: %s\n    passphrase: first\n"
        "- blockvault.vsphere.backup_repository:\n    repository: %s\n    passphrase: first\n"
        "    new_passphrase: \"{{ old_repository_passphrase }}\"\n    key_label: operators-2026-06\n"
        % (location, location))))
    return {str(site.repository): str(location)}


def check_rotation(site, _example, text):
    location = re.search(r"repository: (\S+)", text).group(1)
    opens = "- blockvault.vsphere.backup_info:\n    repository: %s\n    passphrase: %s\n"
    site.playbook("the new passphrase opens", site.write("rotated", as_play(opens % (location, '"{{ repository_passphrase }}"'))))
    refused = site.playbook("the old passphrase", site.write("rotated", as_play(opens % (
        location, '"{{ old_repository_passphrase }}"'))), expect_ok=False)
    assert "passphrase" in refused, refused
    # "a rerun of the same task opens the repository with the new one and reports no change"
    rerun = site.playbook("the rotation again", site.write("rotation", as_play(text)))
    assert re.search(r"ok=1 +changed=0 .*failed=0", rerun), rerun


def check_file_restored(site, _example, _text):
    # the version of before the change window, back on the "server" (here the proxy)
    server = site.directory / "web01-etc-nginx"
    assert (server / "nginx.conf").read_bytes() == NGINX_V1
    # "keeping a backup of the current one"
    assert [path.read_bytes() for path in server.iterdir() if path.name.startswith("nginx.conf.")] == [NGINX_V2]


def check_report(site, _example, _text):
    page = (site.directory / "reports" / "report.html").read_text()
    assert "vSphere backups" in page and "web01" in page and "<svg" in page


SETUPS = {"Rotate the operators' passphrase": rotation_repository}
CHECKS = {"Rotate the operators' passphrase": check_rotation,
          "nginx.conf as it was before the change window, to the proxy": check_file_restored,
          "Validate every restore point, reading every chunk (the report shows which passed, and when)": check_report}


def test_the_file_restore_playbook_lists_restores_delivers_and_cleans_up(site):
    # the user guide's one-run recipe: `blockvault_file_restore: {name, paths, before}`,
    # `blockvault_file_restore_deliver: {host, dest}`
    delivered = site.directory / ("delivered-%s" % uuid.uuid4().hex[:6])
    delivered.mkdir()
    # the scratch directory is made in the temporary directory of the play: one of this test's own
    temporary = site.directory / ("tmp-%s" % uuid.uuid4().hex[:6])
    temporary.mkdir()
    variables = {
        "blockvault_repository": {"repository": str(site.repository), "passphrase": VAULT["vault_repository_passphrase"]},
        "blockvault_file_restore": {"name": "web01", "paths": ["/etc/nginx/nginx.conf"],
                                    "before": site.points["web01-v2-created"]},
        "blockvault_file_restore_deliver": {"host": "localhost", "dest": str(delivered)}}
    # libguestfs's appliance cache stays where it is (it follows TMPDIR otherwise)
    env = {"TMPDIR": str(temporary), "LIBGUESTFS_CACHEDIR": os.environ.get("LIBGUESTFS_CACHEDIR", "/var/tmp")}
    output = site.playbook("the file_restore playbook", "blockvault.vsphere.file_restore", json.dumps(variables), env=env)
    assert '"/etc/nginx/nginx.conf"' in output, output          # the listing shown
    assert (delivered / "nginx.conf").read_bytes() == NGINX_V1
    assert re.search(r'"1 path\(s\) of restore point \S+ restored to localhost:%s \(1 updated\)"'
                     % re.escape(str(delivered)), output), output
    assert re.search(r"TASK \[Remove the scratch directory\] \**\nchanged", output), output
    assert list(temporary.iterdir()) == []      # the scratch directory was made there, and removed


def test_a_backup_runs_with_nothing_but_what_the_awx_credential_type_injects(site):
    credential = next(example for example in EXAMPLES if kind(example) == "credential_type")
    fields = {"host": site.lab.info["host"], "username": site.lab.info["user"], "password": site.lab.info["password"],
              "passphrase": VAULT["vault_repository_passphrase"]}
    injected = {name: re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda match: fields[match.group(1)], value)
                for name, value in credential.data["env"].items()}
    assert set(fields) == {field["id"] for field in credential.data["fields"]}
    env_before = site.env
    site.env = {name: value for name, value in env_before.items()
                if name not in ("VMWARE_HOST", "VMWARE_USER", "VMWARE_PASSWORD", "BLOCKVAULT_PASSPHRASE")}
    site.env.update(injected)
    try:
        # the task names only the VM and the repository: everything else comes from the credential (and the lab's
        # port, CA and VDDK, which a site sets in its execution environment)
        output = site.playbook("credential type", site.write("credential", as_play(
            "- blockvault.vsphere.vm_backup:\n    name: db01\n    repository: %s\n    quiesce: false\n"
            "  register: backup\n- ansible.builtin.assert:\n    that: backup.restore_point.vm == 'db01'\n"
            % site.repository)))
    finally:
        site.env = env_before
    assert "failed=0" in output, output


def test_the_execution_environment_installs_this_collection():
    environment = next(example for example in EXAMPLES if kind(example) == "execution_environment").data
    galaxy = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())
    assert environment["version"] == 3
    assert {"name": "%s.%s" % (galaxy["namespace"], galaxy["name"])} in environment["dependencies"]["galaxy"]["collections"]
    # the VDDK directory the build step unpacks is the vddk_libdir the other examples give
    assert "/opt/vmware-vix-disklib-distrib/lib64" in " ".join(environment["additional_build_steps"]["append_final"])


def test_the_result_samples_use_what_the_module_returns():
    returns = module_returns("vm_backup")
    for example in (example for example in EXAMPLES if kind(example) == "vm_backup_result"):
        for key, value in example.data.items():
            documented = returns[key]
            if isinstance(value, dict):
                assert set(value) <= set(documented.get("contains", {})), (example.name, key)
