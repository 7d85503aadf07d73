"""The fuzz campaign of the repository object parsers, run as part of the torture.

It runs the project's hypothesis fuzz module (FUZZ_MODULE, the tests `make fuzz` runs) with
``BLOCKVAULT_FUZZ_EXAMPLES`` cases in all and the torture's seed as ``--hypothesis-seed``, in its own pytest
process bounded by a timeout. When the module is not in this checkout the campaign says so (0 cases) rather than
pretending. ``run_fuzz`` is a plain function.
"""
import os
import pathlib
import re
import subprocess
import sys

from harness import COLLECTIONS, ROOT  # pylint: disable=import-error

FUZZ_MODULE = pathlib.Path("tests/unit/plugins/module_utils/repo/test_fuzz_parsers.py")
SUMMARY = re.compile(r"(\d+) (passed|failed|error|errors)\b")


def run_fuzz(examples, seed, timeout, log):
    """{"module", "examples", "seed", "outcome": passed | failed | absent | timeout, "tests": {...}, "tail"}."""
    report = {"module": str(FUZZ_MODULE), "examples": 0, "seed": seed, "tests": {}, "tail": ""}
    if not (ROOT / FUZZ_MODULE).is_file():
        report["outcome"] = "absent"
        log("fuzz: %s is not in this checkout: no fuzz cases run" % FUZZ_MODULE)
        return report
    environ = dict(os.environ, BLOCKVAULT_FUZZ_EXAMPLES=str(examples), ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
               "--hypothesis-seed=%d" % seed, str(FUZZ_MODULE)]
    log("fuzz: %d cases, seed %d (replay: make fuzz FUZZ_SEED=%d FUZZ_EXAMPLES=%d)" % (examples, seed, seed, examples))
    try:
        done = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        report.update(outcome="timeout", tail=str(exc.stdout or "")[-2000:])
        return report
    for count, what in SUMMARY.findall(done.stdout.splitlines()[-1] if done.stdout else ""):
        report["tests"][what] = int(count)
    report.update(outcome="passed" if done.returncode == 0 else "failed", tail=done.stdout[-3000:])
    if done.returncode == 0:
        report["examples"] = examples
    return report
