"""The lists of known variables that the roles and playbooks check at their start (a misspelt variable is refused
rather than ignored) stay equal to what the roles' and playbooks' files define and use."""
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHECKED_ROLES = ("vm_backup", "vm_restore", "backup_validate")


def _names_set_by_tasks(node, prefix, out):
    """Variables a task file defines: set_fact keys, task vars, register, loop_var and index_var."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("ansible.builtin.set_fact", "vars") and isinstance(value, dict):
                out.update(name for name in value if name.startswith(prefix))
            elif key == "register" and isinstance(value, str):
                out.add(value)
            elif key == "loop_control" and isinstance(value, dict):
                out.update(v for k, v in value.items() if k in ("loop_var", "index_var") and isinstance(v, str))
            _names_set_by_tasks(value, prefix, out)
    elif isinstance(node, list):
        for item in node:
            _names_set_by_tasks(item, prefix, out)


@pytest.mark.parametrize("role", CHECKED_ROLES)
def test_a_roles_known_variables_are_its_options_and_the_names_it_sets(role):
    prefix = role + "_"
    base = ROOT / "roles" / role
    defined = set()
    for entry in yaml.safe_load((base / "meta" / "argument_specs.yml").read_text())["argument_specs"].values():
        defined.update(entry.get("options", {}))
    # the role's molecule scenarios run it after setting their own role-prefixed names (ansible-lint wants the prefix)
    for path in sorted(base.glob("*/*.yml")) + sorted(base.glob("molecule/*/*.yml")):
        document = yaml.safe_load(path.read_text())
        if path.parent.name in ("tasks", "handlers") or path.parent.parent.name == "molecule":
            _names_set_by_tasks(document, prefix, defined)
        elif path.parent.name in ("vars", "defaults"):
            defined.update(name for name in document or {} if name.startswith(prefix))
    known = yaml.safe_load((base / "vars" / "main.yml").read_text())[prefix + "variables"]
    assert sorted(known) == sorted(name for name in defined if name.startswith(prefix))
    assert len(set(known)) == len(known)


def test_the_playbooks_known_variables_are_the_ones_they_use():
    # the roles' files count too: they read blockvault_keep, and the set_stats they publish (blockvault_backup, ...)
    # become extra variables of the next playbook of an AWX workflow
    files = [path for path in sorted((ROOT / "playbooks").rglob("*.yml")) if path.name != "blockvault.yml"]
    files += sorted((ROOT / "roles").glob("*/*/*.yml"))
    used = {name for path in files for name in re.findall(r"\bblockvault_[a-z_]+", path.read_text())}
    known = yaml.safe_load((ROOT / "playbooks" / "vars" / "blockvault.yml").read_text())["blockvault_known_variables"]
    assert sorted(known) == sorted(used)
