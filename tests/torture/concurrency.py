"""Mixed concurrency: backups of different VMs and of the same VM into one and into two repositories, with prune, GC
and validate looping beside them, and the guests writing all along.

Threads, each looping until the deadline and running the product in child processes: two backup workers of lab-vm1
and one of lab-vm2 into repository A (local), one of lab-vm1 and one of lab-vm2 into repository B (S3); prune
(keep_last 3, with GC) of A and of B; GC of A; full validation of A and of B; one guest writer per VM. Every
operation must succeed, except the documented refusal of a second backup of one VM into one repository ("Another
backup of VM ... is running"). Each restore point is restored byte for byte right after its backup (by the backup
worker) and must equal a state the VM's disks had during that backup, from the lab's checksums recorded by the guest
writer; a point pruned before its check is counted apart. ``ConcurrencyCampaign`` owns its threads; its counters
are guarded by one lock.
"""
import dataclasses
import random
import threading
import time
import uuid

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import RepositoryError

REFUSAL = "Another backup of VM "
VMS = ("lab-vm1", "lab-vm2")


class GuestHistory:
    """The states of one VM's disks over time: [GuestState], the first one the VM's state when the campaign began.
    Thread-safe."""

    def __init__(self, harness, vm):
        self.h = harness
        self.vm = vm
        self._changed = threading.Condition()
        self._writing = None        # when the write in progress began (monotonic), None between writes
        now = time.monotonic()
        self._states = [GuestState(now, now, harness.checksums(vm), harness.chunk_states(vm), None)]

    def write(self, rng):
        with self._changed:
            self._writing = before = time.monotonic()
        try:
            written = self.h.guest_write(rng, self.vm)
            state = GuestState(before, None, self.h.checksums(self.vm), self.h.chunk_states(self.vm), written)
            with self._changed:
                self._states.append(dataclasses.replace(state, after=time.monotonic()))
        finally:
            with self._changed:
                self._writing = None
                self._changed.notify_all()

    def during(self, start, end):
        """The numbers of the states the VM may have had at some moment of [start, end].

        A write that began before ``end`` may have reached the disk before the snapshot although its state (read
        back from the lab afterwards) is not recorded yet: this waits for it, so that its state is a candidate.
        """
        with self._changed:
            self._changed.wait_for(lambda: self._writing is None or self._writing > end)
            states = list(self._states)
        out = []
        for number, state in enumerate(states):
            following_done = states[number + 1].after if number + 1 < len(states) else None
            if state.before <= end and (following_done is None or following_done >= start):
                out.append(number)
        return out

    def states(self, numbers):
        with self._changed:
            return [self._states[number].checksums for number in numbers]

    def explain(self, numbers, restored):
        """Which chunks of a wrongly restored point match no state of its window ``numbers``, and which states
        (number: the write that made it) they match instead: an older state means a change the incremental missed,
        a newer one a read that saw writes made after the snapshot."""
        with self._changed:
            states = list(self._states)
        lines = []
        for disk, chunks in enumerate(restored):
            for number, digest in enumerate(chunks or ()):
                if any(states[n].chunks[disk][number] == digest for n in numbers):
                    continue
                matches = [n for n, state in enumerate(states) if state.chunks[disk][number] == digest]
                lines.append("disk %d chunk %d matches no state of the window %s but states %s" % (disk, number, numbers, matches[-8:]))
        writes = ["%d: disk %d [%d, +%d) at %.3f-%.3f" % ((n,) + state.written + (state.before, state.after))
                  for n, state in enumerate(states) if state.written and n >= min(numbers) - 6 and n <= max(numbers) + 2]
        return "; ".join(lines) + "; writes around it: " + ", ".join(writes)


@dataclasses.dataclass(frozen=True)
class GuestState:
    """One state of a VM's disks: made by the write ``written`` ((disk, offset, length), None for the first) that
    ran from ``before`` to ``after`` (monotonic seconds); the lab's whole-disk sha256 ``checksums`` and per-chunk
    digests ``chunks`` (per disk). Immutable."""

    before: float
    after: float
    checksums: tuple
    chunks: tuple
    written: tuple


class ConcurrencyCampaign:
    """Runs the threads above for a wall-clock budget and reports counts and failures."""

    def __init__(self, harness, seed, log):
        self.h = harness
        self.seed = seed
        self.log = log
        self.rng = random.Random(seed)
        self._lock = threading.Lock()
        self.counts = {}
        self.failures = []
        self.points = {"verified": 0, "pruned_before_check": 0}
        self.seconds = 0.0

    def _count(self, what, outcome):
        with self._lock:
            entry = self.counts.setdefault(what, {"ok": 0, "refused": 0, "failed": 0})
            entry[outcome] += 1

    def _fail(self, what, problem):
        self._count(what, "failed")
        with self._lock:
            self.failures.append({"phase": "concurrency", "op": what, "torture_seed": self.seed, "problems": [problem[:6000]]})
        self.log("concurrency %s: FAILED: %s" % (what, problem[:300]))

    def run(self, seconds):
        repos = {"A": self.h.new_repo("local", "conc-a"), "B": self.h.new_repo("s3", "conc-b")}
        histories = {vm: GuestHistory(self.h, vm) for vm in VMS}
        deadline = time.monotonic() + seconds
        workers = [("backup lab-vm1 -> A #1", self._backup_loop, (repos["A"], histories["lab-vm1"])),
                   ("backup lab-vm1 -> A #2", self._backup_loop, (repos["A"], histories["lab-vm1"])),
                   ("backup lab-vm2 -> A", self._backup_loop, (repos["A"], histories["lab-vm2"])),
                   ("backup lab-vm1 -> B", self._backup_loop, (repos["B"], histories["lab-vm1"])),
                   ("backup lab-vm2 -> B", self._backup_loop, (repos["B"], histories["lab-vm2"])),
                   ("prune A", self._maintenance_loop, (repos["A"], "prune")),
                   ("prune B", self._maintenance_loop, (repos["B"], "prune")),
                   ("gc A", self._maintenance_loop, (repos["A"], "gc")),
                   ("validate A", self._maintenance_loop, (repos["A"], "validate")),
                   ("validate B", self._maintenance_loop, (repos["B"], "validate"))]
        workers += [("guest writes %s" % vm, self._writer_loop, (histories[vm],)) for vm in VMS]
        threads = []
        started = time.monotonic()
        for name, target, args in workers:
            rng = random.Random(self.rng.randrange(1 << 32))
            thread = threading.Thread(target=self._guard, args=(name, target, rng, deadline) + args, name=name, daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        self.seconds = time.monotonic() - started
        for key, repo in repos.items():           # whatever is left must still be byte-exact and validate
            problem = self.h.validate_full(repo)
            if problem:
                self._fail("final validation %s" % key, problem)

    def _guard(self, name, target, rng, deadline, *args):
        try:
            target(name, rng, deadline, *args)
        except Exception as exc:  # pylint: disable=broad-except  # a harness error is a failure, said so
            self._fail(name, "the worker raised %s: %s" % (type(exc).__name__, exc))

    def _writer_loop(self, _name, rng, deadline, history):
        while time.monotonic() < deadline:
            history.write(rng)
            time.sleep(rng.uniform(0.5, 2.0))

    def _backup_loop(self, name, rng, deadline, repo, history):
        what = name     # "#1", "#2": two workers backing up one VM into one repository (one of them may be refused)
        while time.monotonic() < deadline:
            spec = self.h.spec("backup", repo, vm=history.vm, mode="auto", run_id="conc-%s" % uuid.uuid4().hex[:12])
            start = time.monotonic()
            outcome = self.h.run_child(spec, latency_us=rng.choice([0, 10000, 30000]))
            end = time.monotonic()
            if outcome.ok:
                self._count(what, "ok")
                window = history.during(start, end)
                self._check_point("%s, run %s (%.3f-%.3f)" % (name, spec["run_id"], start, end), repo,
                                  outcome.result["restore_point"]["id"], history, window)
            elif (outcome.answer or {}).get("message", "").startswith(REFUSAL):
                self._count(what, "refused")
            else:
                self._fail(what, outcome.describe())
            time.sleep(rng.uniform(0.0, 1.0))

    def _check_point(self, name, repo, rp_id, history, window):
        self.h.expect.record(repo["location"], rp_id, history.states(window))

        def explain(manifest, restored):
            disks = ["%s %s %s (%s)" % (disk.key.value, disk.mode, disk.change_id, disk.reason) for disk in manifest.disks]
            return "; its disks: %s; %s" % (", ".join(disks), history.explain(window, restored))
        try:
            problem = self.h.verify_point(repo, rp_id, self.h.workdir / "scratch-conc", explain=explain)
        except RepositoryError:
            problem = None if rp_id not in self.h.restore_points(repo) else "restore point %s does not load" % rp_id
            if problem is None:
                with self._lock:
                    self.points["pruned_before_check"] += 1
                return
        if problem and rp_id not in self.h.restore_points(repo):
            with self._lock:
                self.points["pruned_before_check"] += 1
            return
        if problem:
            self._fail("byte-exact restore", "%s: %s" % (name, problem))
            return
        with self._lock:
            self.points["verified"] += 1

    def _maintenance_loop(self, name, rng, deadline, repo, kind):
        while time.monotonic() < deadline:
            if kind == "prune":
                spec = self.h.spec("prune", repo, policy={"keep_last": 3}, gc=True)
            elif kind == "gc":
                spec = self.h.spec("gc", repo)
            else:
                spec = self.h.spec("validate", repo, level="full")
            outcome = self.h.run_child(spec)
            if not outcome.ok:
                self._fail(name, outcome.describe())
            elif kind == "validate" and not outcome.result["ok"]:
                self._fail(name, "not ok: damaged %s errors %s" % (outcome.result["damaged"], outcome.result["errors"]))
            else:
                self._count(name, "ok")
            time.sleep(rng.uniform(0.5, 3.0))
