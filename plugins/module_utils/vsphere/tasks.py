# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one vSphere task waiter of the engine.

Every ``*_Task`` call in this layer goes through ``wait_for_task``: it polls ``task.info``
with a jittered exponential backoff (0.1 s doubling up to 2 s by default), reports progress,
and turns the outcome into a result or a typed error:

- state ``error``  -> TaskError(fault=<vSphere fault type name>, message with the localized text)
- no end in time   -> TaskTimeoutError (the task is asked to cancel when vSphere says it can be)
- polling fails on the network more than a few times in a row -> VSphereError (single drops are retried)

``what`` is a short phrase ("create snapshot blockvault-r1 of VM web01") used in messages. How it polls
(backoff, jitter, tolerated network errors, and the clock, sleep and random hooks tests replace) is a
``WaitPolicy``; callers normally keep ``DEFAULT_POLICY``.
"""

from __future__ import annotations

import dataclasses
import http.client
import logging
import random
import time

from ..errors import TaskError, TaskTimeoutError, VSphereError
from ._pyvmomi import fault_message, fault_name, object_properties

__all__ = ["wait_for_task", "WaitPolicy", "DEFAULT_POLICY", "DEFAULT_TASK_TIMEOUT"]

log = logging.getLogger(__name__)

#: seconds; snapshot removal with consolidation of a large delta can take long
DEFAULT_TASK_TIMEOUT = 3600


@dataclasses.dataclass(frozen=True)
class WaitPolicy:
    """How ``wait_for_task`` polls: the first delay (seconds), doubling up to ``max_delay``, each shortened by up to
    ``jitter`` (a fraction) times ``rng()``; up to ``max_poll_errors`` consecutive network errors are retried.
    ``sleep``/``clock``/``rng`` are ``time.sleep``/``time.monotonic``/``random.random`` unless a test injects its own.
    Immutable; thread-safe when its hooks are.
    """

    initial_delay: float = 0.1
    max_delay: float = 2.0
    jitter: float = 0.5
    max_poll_errors: int = 3
    sleep: object = time.sleep
    clock: object = time.monotonic
    rng: object = random.random


DEFAULT_POLICY = WaitPolicy()

_TASK_INFO_PATHS = ("info.state", "info.error", "info.result", "info.progress", "info.cancelable")


class _TaskInfo:
    """The task.info fields the waiter uses, read one by one: some servers (govmomi's simulator) put
    a non-ManagedEntity in ``info.entity``, which pyVmomi refuses to deserialize as a whole."""

    def __init__(self, values):
        for path in _TASK_INFO_PATHS:
            setattr(self, path.split(".", 1)[1], values.get(path))


def _sleep_plan(initial_delay, max_delay, jitter, rng):
    delay = initial_delay
    while True:
        # full jitter on the upper part: never less than half the nominal delay, never more than it
        yield delay * (1.0 - jitter * rng())
        delay = min(delay * 2.0, max_delay)


def wait_for_task(task, what="vSphere task", timeout=DEFAULT_TASK_TIMEOUT, progress=None, policy=DEFAULT_POLICY):
    """Wait until ``task`` ends; return ``task.info.result``.

    ``progress(percent)`` is called with each new integer percentage vSphere reports.
    ``timeout`` is in seconds (None = wait forever). ``policy`` (a WaitPolicy) says how to poll. Raises
    TaskError or TaskTimeoutError. Up to ``policy.max_poll_errors`` consecutive network errors while polling
    are retried; more raise VSphereError. vSphere faults while polling propagate.
    Thread-safe: keeps no state outside the call.
    """
    sleep, clock = policy.sleep, policy.clock
    deadline = None if timeout is None else clock() + timeout
    delays = _sleep_plan(policy.initial_delay, policy.max_delay, policy.jitter, policy.rng)
    last_progress = None
    poll_errors = 0
    while True:
        try:
            info = _TaskInfo(object_properties(task, _TASK_INFO_PATHS))
            poll_errors = 0
        except (OSError, http.client.HTTPException) as exc:
            # the task goes on in vCenter: a dropped connection is no reason to lose track of it
            poll_errors += 1
            if poll_errors > policy.max_poll_errors:
                raise VSphereError("Lost contact with vCenter while waiting for %s (task %s): %s." % (what, _task_id(task), exc),
                                   hint="Check the task in the vSphere client; the next run cleans up what it left.") from exc
            log.warning("polling %s (task %s) failed (%s); trying again", what, _task_id(task), exc)
            sleep(next(delays))
            continue
        state = str(info.state)
        if state == "success":
            if progress is not None and last_progress != 100:
                progress(100)
            return info.result
        if state == "error":
            raise _task_error(info, what)
        percent = getattr(info, "progress", None)
        if progress is not None and percent is not None and percent != last_progress:
            last_progress = percent
            progress(percent)
        delay = next(delays)
        if deadline is not None:
            remaining = deadline - clock()
            if remaining <= 0:
                _try_cancel(task, info, what)
                raise TaskTimeoutError(
                    "%s did not finish within %s seconds (task %s, last state %s)." % (_capitalize(what), timeout,
                                                                                       _task_id(task), state),
                    fault="Timeout",
                    hint="Check the task in the vSphere client; raise the timeout if the task is just slow.")
            delay = min(delay, remaining)
        sleep(delay)


def _task_error(info, what):
    fault = getattr(info, "error", None)
    if fault is None:
        return TaskError("%s failed without an error from vSphere." % _capitalize(what), fault=None)
    name = fault_name(fault)
    return TaskError("%s failed: %s (%s)." % (_capitalize(what), fault_message(fault).rstrip("."), name), fault=name)


def _try_cancel(task, info, what):
    if not getattr(info, "cancelable", False):
        return
    try:
        task.CancelTask()
        log.warning("cancelled %s (task %s) after its timeout", what, _task_id(task))
    except Exception as exc:  # best effort: the timeout error is what the caller needs
        log.warning("could not cancel %s (task %s): %s", what, _task_id(task), fault_message(exc))


def _task_id(task):
    return getattr(task, "_moId", None) or "?"


def _capitalize(text):
    text = str(text)
    return text[:1].upper() + text[1:]
