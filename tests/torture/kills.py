"""kill -9 at random points of every operation that writes, on a local and an S3 repository.

Each case: run the operation in a child process, SIGKILL it after a random delay (drawn up to the duration of its
last uninterrupted run, with the VDDK stand-in's latency knob slowing reads and writes so kills land during
transfers), then check what the kill left (the operation's own checks below), a full validation, the next run of the
same operation (it must succeed), and a byte-exact restore of every restore point of the repository against the
lab's checksums. A case whose child finished before the kill is counted as ``missed`` (no kill point), not held.

Operation checks after the kill: a backup's run may or may not have committed (its restore point, if any, holds the
state the lab had); a file restore leaves no file or a byte-exact one at the target path; a new-VM restore leaves no
VM, a VM marked incomplete, or a byte-exact one; a key change leaves the repository opening with its passphrase; a
copy to the offsite repository (on the other backend: local to S3, S3 to local; rate-limited at random) leaves that
repository validating clean, and after the next copy every restore point there restores byte-exact.
``KillCampaign`` is single-threaded.
"""
import random
import time
import uuid

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import WrongKeyError

from harness import PLACEMENT, sha256_file  # pylint: disable=import-error

OPERATIONS = ("backup_full", "backup_incremental", "prune", "gc", "restore_file", "restore_new_vm", "restore_in_place",
              "key_add", "key_remove", "copy")
BACKENDS = ("local", "s3")
LATENCIES_US = (20000, 60000, 120000)
MAX_POINTS = 9          # an untimed prune (keep_last 2) keeps the repository's restore points about this many


class Case:
    """One kill case: the spec run, what to check after the kill and after the next run, and its notes."""

    def __init__(self, spec, latency_us=0, after_kill=None, after_next=None, on_commit=None):
        self.spec = spec
        self.latency_us = latency_us
        self.after_kill = after_kill or (lambda: [])
        self.after_next = after_next or (lambda outcome: [])
        self.on_commit = on_commit or (lambda: None)


class KillCampaign:
    """Runs kill cases round-robin over OPERATIONS x BACKENDS until a deadline; fills ``results`` (see record)."""

    def __init__(self, harness, seed, log):
        self.h = harness
        self.seed = seed
        self.rng = random.Random(seed)
        self.log = log
        self.durations = {}
        self.repos = {}
        self.offsite = {}       # the copy destination of each backend's repository, on the other backend
        self.stats = {op: {"tried": 0, "landed": 0, "held": 0, "missed": 0, "failed": 0, "notes": []} for op in OPERATIONS}
        self.failures = []
        self.extra_keys = {backend: [] for backend in BACKENDS}

    # -- set-up ---------------------------------------------------------------------------------------------
    def setup(self):
        for backend in BACKENDS:
            repo = self.h.new_repo(backend, "kills")
            self.repos[backend] = repo
            for vm in ("lab-vm1", "lab-vm2"):
                self._backup(repo, vm)
            inplace = "torture-inplace-%s" % backend
            first = self.h.restore_points(repo)[-1]
            outcome = self.h.run_child(self.h.spec("restore_new_vm", repo, restore_point=first, name=inplace,
                                                   placement=PLACEMENT))
            if not outcome.ok:
                raise RuntimeError("set-up: restore to %s failed: %s" % (inplace, outcome.describe()))
            for _round in range(2):
                self.h.guest_write(self.rng, inplace)
                self._backup(repo, inplace)
            self.offsite[backend] = self.h.new_repo("s3" if backend == "local" else "local", "offsite")

    def _backup(self, repo, vm, mode="auto"):
        state = self.h.checksums(vm)
        outcome = self.h.run_child(self.h.spec("backup", repo, vm=vm, mode=mode, run_id=_run_id("setup")))
        if not outcome.ok:
            raise RuntimeError("set-up: backup of %s failed: %s" % (vm, outcome.describe()))
        self.h.expect.record(repo["location"], outcome.result["restore_point"]["id"], [state])

    def close(self):
        for backend in BACKENDS:
            for name in ("torture-inplace-%s" % backend, "torture-new-%s" % backend):
                self.h.destroy_vm(name)

    # -- the loop --------------------------------------------------------------------------------------------
    def run(self, deadline, operations=OPERATIONS):
        """Kill cases of ``operations`` (TORTURE_OPS narrows them, e.g. to copy alone) in turn until ``deadline``."""
        unknown = set(operations) - set(OPERATIONS)
        if unknown:
            raise ValueError("unknown operations %s: they are %s" % (sorted(unknown), ", ".join(OPERATIONS)))
        number = 0
        while time.monotonic() < deadline:
            op = operations[number % len(operations)]
            backend = BACKENDS[(number // len(operations)) % len(BACKENDS)]
            number += 1
            case_seed = self.rng.randrange(1 << 32)
            try:
                self.case(op, backend, case_seed)
            except Exception as exc:  # pylint: disable=broad-except  # a harness error is reported as a failure
                self._fail(op, backend, case_seed, ["the case raised %s: %s" % (type(exc).__name__, exc)])

    def case(self, op, backend, case_seed):
        rng = random.Random(case_seed)
        repo = self.repos[backend]
        self._keep_small(repo)
        case = getattr(self, "_case_" + op)(rng, repo, backend)
        if case is None:
            return
        stats = self.stats[op]
        stats["tried"] += 1
        delay = rng.uniform(0.05, 1.1 * self.durations.get((op, backend), 1.5))
        outcome = self.h.run_child(case.spec, kill_after=delay, latency_us=case.latency_us)
        if not outcome.killed:
            stats["missed"] += 1
            if not outcome.ok:
                self._fail(op, backend, case_seed, ["the run failed without a kill: " + outcome.describe()])
            else:
                self.durations[(op, backend)] = outcome.duration
                case.after_next(outcome)
            return
        stats["landed"] += 1
        problems = case.after_kill()
        case.on_commit()
        problem = self.h.validate_full(repo)
        if problem:
            problems.append("after the kill: " + problem)
        respec = dict(case.spec, run_id=_run_id("next")) if "run_id" in case.spec else case.spec
        again = self.h.run_child(respec, latency_us=case.latency_us)
        if again.ok:
            self.durations[(op, backend)] = again.duration
        problems += case.after_next(again)
        problems += self.h.verify_all(repo, self.h.workdir / "scratch")
        if problems:
            self._fail(op, backend, case_seed, problems, delay)
        else:
            stats["held"] += 1
        verdict = "held" if not problems else "FAILED: " + problems[0][:200]
        self.log("kill %-18s %-5s seed %10d after %.2fs: %s" % (op, backend, case_seed, delay, verdict))

    def _fail(self, op, backend, case_seed, problems, delay=None):
        self.stats[op]["failed"] += 1
        self.failures.append({"phase": "kills", "op": op, "backend": backend, "case_seed": case_seed,
                              "torture_seed": self.seed, "kill_after_s": delay, "problems": problems[:5]})
        self.log("kill %-18s %-5s seed %10d: FAILED: %s" % (op, backend, case_seed, problems[0][:300]))

    def _keep_small(self, repo):
        """Keep restore points few (checking every one after each kill costs time): an unkilled prune, keep_last 2."""
        if len(self.h.restore_points(repo)) > MAX_POINTS:
            outcome = self.h.run_child(self.h.spec("prune", repo, policy={"keep_last": 2}, gc=True))
            if not outcome.ok:
                raise RuntimeError("an unkilled prune failed: " + outcome.describe())

    # -- the operations --------------------------------------------------------------------------------------
    def _backup_case(self, rng, repo, mode):
        vm = rng.choice(["lab-vm1", "lab-vm2"])
        self.h.guest_write(rng, vm)
        state = self.h.checksums(vm)
        spec = self.h.spec("backup", repo, vm=vm, mode=mode, run_id=_run_id("killed"))
        known = set(self.h.expect.points(repo["location"]))

        def on_commit():        # the killed run may have committed: its restore point holds this state
            repository = self.h.open_repo(repo)
            try:
                for rp_id in self.h.restore_points(repo):
                    if rp_id not in known and repository.load_manifest(rp_id).run_id == spec["run_id"]:
                        self.h.expect.record(repo["location"], rp_id, [state])
            finally:
                repository.close()

        def after_next(outcome):
            if not outcome.ok:
                return ["the next backup failed: " + outcome.describe()]
            self.h.expect.record(repo["location"], outcome.result["restore_point"]["id"], [state])
            left = [name for name in self.h.vm_facts(vm)["snapshots"] if name.startswith("blockvault-")]
            return ["snapshots left on %s after the next backup: %s" % (vm, left)] if left else []
        return Case(spec, rng.choice(LATENCIES_US), on_commit=on_commit, after_next=after_next)

    def _case_backup_full(self, rng, repo, _backend):
        return self._backup_case(rng, repo, "full")

    def _case_backup_incremental(self, rng, repo, _backend):
        return self._backup_case(rng, repo, "auto")

    def _case_prune(self, rng, repo, _backend):
        spec = self.h.spec("prune", repo, policy={"keep_last": rng.choice([2, 3])}, gc=True)
        return Case(spec, after_next=_must_succeed("prune"))

    def _case_gc(self, rng, repo, _backend):
        points = self.h.restore_points(repo)
        if len(points) > 3:      # forget one restore point (no GC) so that GC has chunks to remove
            repository = self.h.open_repo(repo)
            try:
                repository.delete_restore_point(rng.choice(points[:-3]))
            finally:
                repository.close()
        return Case(self.h.spec("gc", repo), after_next=_must_succeed("gc"))

    def _pick(self, rng, repo, vm_prefix=None):
        repository = self.h.open_repo(repo)
        try:
            manifests = [repository.load_manifest(rp_id) for rp_id in self.h.restore_points(repo)]
        finally:
            repository.close()
        manifests = [m for m in manifests if vm_prefix is None or m.vm.name.startswith(vm_prefix)]
        manifest = rng.choice(manifests)
        return manifest, self.h.expect.get(repo["location"], manifest.id)

    def _points_of(self, repo, vm_name):
        repository = self.h.open_repo(repo)
        try:
            return [rp_id for rp_id in self.h.restore_points(repo) if repository.load_manifest(rp_id).vm.name == vm_name]
        finally:
            repository.close()

    def _case_restore_file(self, rng, repo, backend):
        manifest, states = self._pick(rng, repo)
        position = rng.randrange(len(manifest.disks))
        path = self.h.workdir / ("restore-%s.raw" % backend)
        for stale in (path, path.with_name(path.name + ".partial")):
            stale.unlink(missing_ok=True)
        spec = self.h.spec("restore_file", repo, restore_point=manifest.id, disk=manifest.disks[position].key.value,
                           path=str(path))
        wanted = {state[position] for state in states or ()}

        def after_kill():
            if path.exists() and sha256_file(path) not in wanted:
                return ["a killed file restore left %s with wrong data" % path]
            if path.with_name(path.name + ".partial").exists():
                self._note("restore_file", "a killed file restore leaves its .partial file behind")
            return []

        def after_next(outcome):
            if not outcome.ok:
                return ["the next file restore failed: " + outcome.describe()]
            return [] if sha256_file(path) in wanted else ["the next file restore wrote wrong data to %s" % path]
        return Case(spec, rng.choice(LATENCIES_US), after_kill=after_kill, after_next=after_next)

    def _vm_restore_case(self, rng, repo, spec, name, states):
        # what the VM held before the killed run: a new-VM restore starts from no VM (a VM found after the kill was
        # made by the killed run); an in-place one from the data of an earlier restore
        if spec["op"] == "restore_new_vm":
            self.h.destroy_vm(name)
        before = self.h.checksums(name) if spec["op"] == "restore_in_place" else None

        def after_kill():
            facts = self.h.vm_facts(name)
            if not facts["exists"] or facts["marker"]:
                return []
            got = self.h.checksums(name)
            if spec["op"] == "restore_new_vm" and got not in states:
                return ["a killed restore left VM %s unmarked with data of no restore point" % name]
            if spec["op"] == "restore_in_place" and got not in states and got != before:
                self._note("restore_in_place", "a killed in-place restore leaves the VM half-written with no marker")
            return []

        def after_next(outcome):
            if not outcome.ok:
                return ["the next restore to %s failed: %s" % (name, outcome.describe())]
            facts = self.h.vm_facts(name)
            if facts["marker"]:
                return ["VM %s still marked incomplete after a completed restore" % name]
            got = self.h.checksums(name)
            return [] if got in states else ["VM %s restored to %s, the lab's checksums then were %s" % (name, got, states)]
        return Case(spec, rng.choice(LATENCIES_US), after_kill=after_kill, after_next=after_next)

    def _case_restore_new_vm(self, rng, repo, backend):
        manifest, states = self._pick(rng, repo, "lab-vm")
        name = "torture-new-%s" % backend
        spec = self.h.spec("restore_new_vm", repo, restore_point=manifest.id, name=name, placement=PLACEMENT)
        return self._vm_restore_case(rng, repo, spec, name, states)

    def _case_restore_in_place(self, rng, repo, backend):
        name = "torture-inplace-%s" % backend
        if not self._points_of(repo, name):
            self.h.guest_write(rng, name)       # GC's set-up or a prune removed its restore points: make one
            self._backup(repo, name)
        manifest, states = self._pick(rng, repo, name)
        spec = self.h.spec("restore_in_place", repo, restore_point=manifest.id, vm=name)
        return self._vm_restore_case(rng, repo, spec, name, states)

    def _case_key_add(self, rng, repo, backend):
        passphrase = "extra %d" % rng.randrange(1 << 40)
        spec = self.h.spec("key_add", repo, new_passphrase=passphrase)

        def after_kill():
            return self._opens(repo, repo["passphrase"], required=True) + self._opens(repo, passphrase, required=False)

        def after_next(outcome):
            if not outcome.ok:
                return ["the next key add failed: " + outcome.describe()]
            self.extra_keys[backend].append(passphrase)
            return self._opens(repo, passphrase, required=True)
        return Case(spec, after_kill=after_kill, after_next=after_next)

    def _case_key_remove(self, rng, repo, backend):
        if not self.extra_keys[backend]:
            repository = self.h.open_repo(repo)
            try:
                passphrase = "extra %d" % rng.randrange(1 << 40)
                repository.add_passphrase(passphrase)
            finally:
                repository.close()
            self.extra_keys[backend].append(passphrase)
        passphrase = self.extra_keys[backend].pop()
        spec = self.h.spec("key_remove", dict(repo, passphrase=passphrase))

        def after_kill():
            return self._opens(repo, repo["passphrase"], required=True) + self._opens(repo, passphrase, required=False)

        def after_next(outcome):
            if outcome.ok or (outcome.answer or {}).get("error_class") == "WrongKeyError":
                # removed now, or by the killed run already (then its passphrase opens nothing: WrongKeyError)
                return self._opens(repo, repo["passphrase"], required=True) + self._gone(repo, passphrase)
            return ["the next key removal failed: " + outcome.describe()]
        return Case(spec, after_kill=after_kill, after_next=after_next)

    def _case_copy(self, rng, repo, backend):
        destination = self.offsite[backend]
        self._keep_small(destination)
        spec = self.h.spec("copy", repo, destination=destination, last=rng.choice([1, 2, None]),
                           rate_limit_mbps=rng.choice([None, 2, 8]))

        def record_copies():
            # a copied restore point holds what its source restore point holds (its manifest names it)
            repository = self.h.open_repo(destination)
            try:
                for rp_id in self.h.restore_points(destination):
                    if self.h.expect.get(destination["location"], rp_id) is None:
                        source = repository.load_manifest(rp_id).stats["copied_from"]["restore_point"]
                        states = self.h.expect.get(repo["location"], source)
                        if states is not None:
                            self.h.expect.record(destination["location"], rp_id, states)
            finally:
                repository.close()

        def after_kill():
            problem = self.h.validate_full(destination)
            if problem:
                return ["the copy's destination after the kill: " + problem]
            record_copies()
            return []

        def after_next(outcome):
            if not outcome.ok:
                return ["the next copy failed: " + outcome.describe()]
            record_copies()
            problem = self.h.validate_full(destination)
            problems = ["the copy's destination after the next copy: " + problem] if problem else []
            return problems + self.h.verify_all(destination, self.h.workdir / "scratch")
        return Case(spec, after_kill=after_kill, after_next=after_next)

    def _opens(self, repo, passphrase, required):
        try:
            self.h.open_repo(repo, passphrase).close()
        except WrongKeyError as exc:
            return ["the repository no longer opens with %s: %s" % ("its passphrase" if required else "the new key", exc)] \
                if required else []
        except Exception as exc:  # pylint: disable=broad-except
            return ["opening the repository raised %s: %s" % (type(exc).__name__, exc)]
        return []

    def _gone(self, repo, passphrase):
        try:
            self.h.open_repo(repo, passphrase).close()
        except WrongKeyError:
            return []
        return ["a removed key still opens the repository"]

    def _note(self, op, text):
        if text not in self.stats[op]["notes"]:
            self.stats[op]["notes"].append(text)


def _must_succeed(what):
    def check(outcome):
        return [] if outcome.ok else ["the next %s failed: %s" % (what, outcome.describe())]
    return check


def _run_id(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])
