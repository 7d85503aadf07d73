"""Servers the lab starts end with the process that started them, however it ended (labkit/children.py)."""
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

LAB_DIR = pathlib.Path(__file__).resolve().parents[1]

STARTER = textwrap.dedent("""
    import subprocess, sys, time
    from labkit.children import ends_with_this_process
    tied = subprocess.Popen(["sleep", "300"], preexec_fn=ends_with_this_process(), start_new_session=True)
    free = subprocess.Popen(["sleep", "300"], start_new_session=True)
    print(tied.pid, free.pid, flush=True)
    time.sleep(300)
""")


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_tied_server_ends_when_its_starter_is_killed_and_an_untied_one_does_not(how):
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=str(LAB_DIR)))
    tied, free = (int(pid) for pid in starter.stdout.readline().split())
    try:
        assert _alive(tied) and _alive(free)
        starter.send_signal(how)
        starter.wait()
        deadline = time.monotonic() + 30
        while _alive(tied) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(tied), "the tied child outlived its starter"
        # the control: without the parent-death signal a child of its own session outlives its starter
        assert _alive(free)
    finally:
        for pid in (tied, free):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        starter.stdout.close()
