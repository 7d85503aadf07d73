"""What the module functional tests share (importable through this folder's conftest): ``run`` runs a module as
Ansible would and returns the JSON a controller receives; ``PASSPHRASE`` is their repositories' passphrase."""
import contextlib
import io
import json

import pytest

from ansible.module_utils.testing import patch_module_args

PASSPHRASE = "correct horse battery staple"


def run(module, args, check_mode=False, diff=False):
    """Run ``module``'s main() with ``args`` (and check/diff mode) and return its parsed JSON output."""
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    stdout = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(stdout):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(stdout.getvalue())
