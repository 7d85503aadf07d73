"""Server processes the lab starts for a test run end with the process that started them.

A test run killed from outside (``timeout`` sends SIGTERM to pytest, an AWX-like runner or a user SIGKILLs it) runs no
fixture finalizer, and its moto, SeaweedFS, simulator and proxy processes used to run on for hours, holding ports and
files. Linux's parent-death signal (prctl PR_SET_PDEATHSIG) ends them with SIGTERM instead, whatever way the starting
process ended. A lab started to outlive its starter (``labkit start``, ``Lab.start(detach=True)``) does not use it.

The signal follows the *thread* that started the child: start servers from the thread that lives as long as they must
(the main thread of pytest and of its xdist workers, whose execnet model runs tests there).
"""
import ctypes
import os
import signal

__all__ = ["ends_with_this_process"]

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


def ends_with_this_process():
    """A ``preexec_fn`` for subprocess.Popen: the child receives SIGTERM when its starter ends (see the module)."""
    starter = os.getpid()

    def arm():
        # runs in the child between fork and exec: no allocation beyond the ctypes call itself
        if _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            os._exit(126)       # pylint: disable=protected-access  # the exec must not happen unarmed
        if os.getppid() != starter:
            os._exit(0)         # pylint: disable=protected-access  # the starter ended before the signal was armed
    return arm
