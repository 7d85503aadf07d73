"""The appliance start's time limit (guest/_launch.py): an appliance that never boots is stopped and named, never
waited for forever. The "appliance" here is a real child process (sleep) started by a stand-in libguestfs handle,
as the direct backend starts qemu."""
import subprocess
import time

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError, GuestError
from ansible_collections.blockvault.vsphere.plugins.module_utils.guest import _binding
from ansible_collections.blockvault.vsphere.plugins.module_utils.guest._launch import LaunchWatchdog, child_pids
from ansible_collections.blockvault.vsphere.plugins.module_utils.guest.session import Drive, GuestSession, GuestSettings


def test_the_children_started_during_the_block_are_killed_when_it_lasts_too_long():
    earlier = subprocess.Popen(["sleep", "600"])
    try:
        with LaunchWatchdog(0.5) as watchdog:
            hung = subprocess.Popen(["sleep", "600"])
            assert hung.pid in child_pids() and earlier.pid in child_pids()
            hung.wait(60)       # returns once the watchdog killed it
        assert watchdog.fired and hung.returncode == -9
        assert earlier.poll() is None, "a child started before the launch was killed"
    finally:
        earlier.kill()
        earlier.wait()


def test_a_block_that_ends_in_time_kills_nothing():
    with LaunchWatchdog(0.2) as watchdog:
        child = subprocess.Popen(["sleep", "600"])
    try:
        time.sleep(0.5)          # past the limit: the timer was cancelled when the block ended
        assert not watchdog.fired and child.poll() is None
    finally:
        child.kill()
        child.wait()


class HangingHandle:
    """A libguestfs handle whose launch() boots an "appliance" that never answers (a KVM guest without nested
    virtualisation): it waits for its child and fails once that child is gone, as libguestfs does when qemu dies."""

    instances = []

    def __init__(self, **_kwargs):
        self.closed = False
        self.settings = None
        HangingHandle.instances.append(self)

    def set_backend_settings(self, settings):
        self.settings = settings

    def set_trace(self, _on):
        pass

    def add_drive_opts(self, *_args, **_kwargs):
        pass

    def launch(self):
        child = subprocess.Popen(["sleep", "600"])
        child.wait()
        raise RuntimeError("guestfs_launch failed: qemu exited (signal %d)" % -child.returncode)

    def close(self):
        self.closed = True


class FakeGuestfs:
    GuestFS = HangingHandle


def test_an_appliance_that_never_starts_is_stopped_and_the_error_says_what_to_do(monkeypatch):
    monkeypatch.setattr(_binding, "load", lambda: FakeGuestfs)
    session = GuestSession((Drive("2000", "/tmp/disk.raw"),), GuestSettings(launch_timeout=1))
    with pytest.raises(GuestError) as caught:
        session.__enter__()
    assert str(caught.value).startswith(
        "The libguestfs appliance did not start within 1 s (accel auto), and was stopped. Where /dev/kvm exists but "
        "cannot run a guest (no nested virtualisation), set appliance_accel: tcg;")
    assert HangingHandle.instances[-1].closed


def test_the_time_limit_must_be_positive():
    with pytest.raises(ConfigurationError, match="appliance_timeout is 0"):
        GuestSettings(launch_timeout=0)
