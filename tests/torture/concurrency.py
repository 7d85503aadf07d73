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
import random
import threading
import time
import uuid

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import RepositoryError

REFUSAL = "Another backup of VM "
VMS = ("lab-vm1", "lab-vm2")


class GuestHistory:
    """The states of one VM's disks over time: [(t_before_write, t_after_write, checksums)]. Thread-safe."""

    def __init__(self, harness, vm):
        self.h = harness
        self.vm = vm
        self._lock = threading.Lock()
        now = time.monotonic()
        self._states = [(now, now, harness.checksums(vm))]

    def write(self, rng):
        before = time.monotonic()
        self.h.guest_write(rng, self.vm)
        state = self.h.checksums(self.vm)
        with self._lock:
            self._states.append((before, time.monotonic(), state))

    def during(self, start, end):
        """The states the VM may have had at some moment of [start, end]."""
        with self._lock:
            states = list(self._states)
        out = []
        for number, (before, _after, state) in enumerate(states):
            following_done = states[number + 1][1] if number + 1 < len(states) else None
            if before <= end and (following_done is None or following_done >= start):
                out.append(state)
        return out


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
            self.failures.append({"phase": "concurrency", "op": what, "torture_seed": self.seed, "problems": [problem[:1500]]})
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
                self._check_point("%s, run %s" % (name, spec["run_id"]), repo, outcome.result["restore_point"]["id"],
                                  history.during(start, end))
            elif (outcome.answer or {}).get("message", "").startswith(REFUSAL):
                self._count(what, "refused")
            else:
                self._fail(what, outcome.describe())
            time.sleep(rng.uniform(0.0, 1.0))

    def _check_point(self, name, repo, rp_id, states):
        self.h.expect.record(repo["location"], rp_id, states)
        try:
            problem = self.h.verify_point(repo, rp_id, self.h.workdir / "scratch-conc")
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
