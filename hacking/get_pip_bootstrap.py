# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-in for the get-pip script that ansible-test downloads from its own host to bootstrap each sanity venv.

That host is not reachable from our build machines (only PyPI is), so the Makefile installs this file where
ansible-test caches the download (~/.ansible/test/cache/get_pip_<version>.py). ansible-test runs it with the pip
requirement and flags of the real script (e.g. ``--disable-pip-version-check pip==24.2 --no-setuptools``): we
bootstrap pip with the interpreter's own ensurepip, then let that pip install the pinned packages from PyPI.
"""

from __future__ import annotations

import subprocess
import sys

GET_PIP_ONLY_FLAGS = ("--no-setuptools", "--no-wheel")


def main(argv):
    pip_arguments = [arg for arg in argv if arg not in GET_PIP_ONLY_FLAGS]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + pip_arguments)


if __name__ == "__main__":
    main(sys.argv[1:])
