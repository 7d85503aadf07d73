"""lease.OwnerLease: the owner's deadline, judged on an injected monotonic clock; LeaseTimings and the defaults."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils import lease
from ansible_collections.blockvault.vsphere.plugins.module_utils.lease import LeaseTimings, OwnerLease


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


TIMINGS = LeaseTimings(refresh_interval=20, stale_after=120, skew_margin=40)


def renewed_lease(clock, length=None):
    owner = OwnerLease(TIMINGS, clock)
    assert owner.renewed(owner.begin_renewal(), length) is True
    return owner


def test_the_defaults_are_a_two_minute_lease_renewed_every_twenty_seconds():
    assert (lease.DEFAULT_TIMINGS.refresh_interval, lease.DEFAULT_TIMINGS.stale_after, lease.DEFAULT_TIMINGS.skew_margin,
            lease.DEFAULT_TIMINGS.write_limit) == (20.0, 120.0, 40.0, 80.0)


def test_set_default_timings_returns_the_previous_ones():
    short = LeaseTimings(0.5, 6, 2)
    previous = lease.set_default_timings(short)
    try:
        assert lease.default_timings() is short
    finally:
        assert lease.set_default_timings(previous) is short
    assert lease.default_timings() is previous


@pytest.mark.parametrize("values, message", [
    ((20, 120, 120), "skew_margin (120 s) must be shorter than stale_after (120 s)"),
    ((0, 120, 40), "lease timings must be positive numbers of seconds, got (0, 120, 40)"),
    (("20", 120, 40), "lease timings must be positive numbers of seconds, got ('20', 120, 40)"),
])
def test_timings_that_cannot_work_are_refused(values, message):
    with pytest.raises(ValueError) as refused:
        LeaseTimings(*values)
    assert str(refused.value) == message


def test_the_owner_may_write_until_stale_after_minus_the_margin():
    clock = Clock()
    owner = renewed_lease(clock)
    clock.now += 80
    assert owner.problem() is None
    clock.now += 0.5
    assert owner.problem() == "not renewed for 80s, longer than the 80s its owner may write after a renewal"
    assert owner.lost


def test_a_lost_lease_is_never_renewed_again_and_callbacks_run_once():
    clock = Clock()
    owner = renewed_lease(clock)
    calls = []
    owner.on_lost(calls.append)
    clock.now += 100
    assert owner.begin_renewal() is None
    clock.now -= 100  # a clock that goes back does not revive it
    assert owner.begin_renewal() is None and owner.renewed(clock.now) is False
    owner.lose("another reason")
    assert calls == ["not renewed for 100s, longer than the 80s its owner may write after a renewal"]
    late = []
    owner.on_lost(late.append)
    assert late == calls


def test_a_renewal_that_completes_after_the_deadline_does_not_count():
    clock = Clock()
    owner = renewed_lease(clock)
    clock.now += 60
    started = owner.begin_renewal()
    clock.now += 25  # the write of the new stamp took 25 s: it may have landed after others judged the lease dead
    assert owner.renewed(started) is False
    assert owner.lost_reason == "a renewal completed 85s after the previous one, longer than the 80s its owner may write " \
                                "after a renewal"


def test_each_renewal_moves_the_deadline_from_its_start():
    clock = Clock()
    owner = renewed_lease(clock)
    for _round in range(10):
        clock.now += 70
        started = owner.begin_renewal()
        clock.now += 5
        assert owner.renewed(started) is True
    clock.now += 75  # 80 s after the last renewal started
    assert owner.problem() is None and owner.age() == 80


def test_a_longer_first_lease_covers_a_slow_creation():
    clock = Clock()
    owner = renewed_lease(clock, length=720)  # a snapshot's lease while it is created
    clock.now += 680
    assert owner.problem() is None
    clock.now += 1
    assert owner.problem().startswith("not renewed for 681s")


def test_a_lease_never_written_is_not_valid():
    assert OwnerLease(TIMINGS, Clock()).problem() == "never written"
