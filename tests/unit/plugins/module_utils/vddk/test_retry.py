"""RetryingDisk: transient failures reconnect through the factory with backoff, bounded; permanent ones fail fast."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import VddkError, VddkTransientError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk.retry import RetryingDisk


class FakeDisk:
    def __init__(self, world, number):
        self.world = world
        self.number = number
        self.closed = False
        self.capacity = 1 << 20
        self.transport_mode = "nbdssl" if number == 1 else "nbd"

    def read_into(self, offset, buffer):
        self.world.calls.append(("read", self.number, offset))
        failure = self.world.failures.pop(0) if self.world.failures else None
        if failure:
            raise failure
        buffer[:] = bytes([self.number]) * len(buffer)
        return len(buffer)

    def write(self, offset, data):
        self.world.calls.append(("write", self.number, offset))
        failure = self.world.failures.pop(0) if self.world.failures else None
        if failure:
            raise failure
        return len(data)

    def close(self):
        self.closed = True
        if self.world.close_fails:
            raise VddkTransientError("close failed too", code=36)


class World:
    def __init__(self, failures=(), close_fails=False):
        self.failures = list(failures)
        self.close_fails = close_fails
        self.disks = []
        self.calls = []
        self.sleeps = []

    def open_disk(self):
        disk = FakeDisk(self, len(self.disks) + 1)
        self.disks.append(disk)
        return disk


def transient(code=14011):
    return VddkTransientError("lost", code=code)


def test_transient_failures_reconnect_and_back_off():
    world = World([transient(), transient(18000)])
    disk = RetryingDisk(world.open_disk, attempts=5, backoff=0.5, sleep=world.sleeps.append)
    buf = bytearray(512)
    assert disk.read_into(4096, buf) == 512
    assert buf == bytes([3]) * 512             # the third handle answered
    assert [d.closed for d in world.disks] == [True, True, False]
    assert world.sleeps == [0.5, 1.0]
    assert disk.retries == 2
    assert world.calls == [("read", 1, 4096), ("read", 2, 4096), ("read", 3, 4096)]


def test_bounded_attempts_raise_the_last_transient_error():
    errors = [transient(36), transient(26), transient(14011)]
    world = World(errors)
    disk = RetryingDisk(world.open_disk, attempts=3, backoff=1.0, sleep=world.sleeps.append)
    with pytest.raises(VddkTransientError) as info:
        disk.write(0, b"x" * 512)
    assert info.value is errors[2]
    assert len(world.disks) == 3 and all(d.closed for d in world.disks)
    assert world.sleeps == [1.0, 2.0]


def test_backoff_is_capped():
    world = World([transient()] * 5)
    disk = RetryingDisk(world.open_disk, attempts=6, backoff=1.0, max_backoff=3.0, sleep=world.sleeps.append)
    disk.read_into(0, bytearray(512))
    assert world.sleeps == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_permanent_error_fails_fast_without_reconnect():
    error = VddkError("out of range", code=16007)
    world = World([error])
    disk = RetryingDisk(world.open_disk, attempts=5, sleep=world.sleeps.append)
    with pytest.raises(VddkError) as info:
        disk.read_into(0, bytearray(512))
    assert info.value is error
    assert len(world.disks) == 1 and not world.disks[0].closed
    assert world.sleeps == []


def test_failing_factory_counts_as_attempt():
    world = World()
    opened = []

    def factory():
        opened.append(1)
        if len(opened) < 3:
            raise transient(18000)
        return world.open_disk()
    disk = RetryingDisk(factory, attempts=3, backoff=0.1, sleep=world.sleeps.append)
    assert disk.read_into(0, bytearray(512)) == 512
    assert len(opened) == 3
    assert world.sleeps == [0.1, 0.2]


def test_close_failure_after_transient_is_tolerated_and_handle_reused():
    world = World([transient()], close_fails=True)
    disk = RetryingDisk(world.open_disk, attempts=2, sleep=world.sleeps.append)
    assert disk.read_into(0, bytearray(512)) == 512
    assert disk.read_into(512, bytearray(512)) == 512
    assert len(world.disks) == 2                  # the second call reuses the reopened handle
    assert disk.capacity == 1 << 20


def test_attempts_must_be_positive():
    with pytest.raises(ValueError):
        RetryingDisk(lambda: None, attempts=0)


def test_transport_mode_is_the_current_handles():
    world = World([transient()])
    disk = RetryingDisk(world.open_disk, attempts=3, sleep=world.sleeps.append)
    assert disk.transport_mode == "nbdssl"
    disk.read_into(0, bytearray(512))            # fails once: the second handle answers
    assert disk.transport_mode == "nbd"
