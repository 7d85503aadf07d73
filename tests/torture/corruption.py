"""Damage one object of every kind in turn (flip a byte, truncate, delete) and check what the product says and does.

A pristine local repository holds three restore points (lab-vm1 full, lab-vm1 after a guest write, lab-vm2) and a
stale lock (its process killed). Each case copies it, damages one object — the config, the key object, the second
point's manifest, one of its disk indexes, a chunk, the lock — and runs, in a child process bounded by
CASE_TIMEOUT (a damaged lock's case: plus the time such a lock is held): a full validation, then a file restore of every disk of every point. It holds when:

- validation reports the damage (not ok, or a typed error) and names the object, and for a chunk lists exactly the
  restore points and disks whose indexes reference it, with byte ranges; an unaffected point is not reported;
- every disk no damage reaches restores byte-exact to the lab's checksums (of when it was backed up);
- every affected disk fails with a typed error and leaves no file, or restores byte-exact (harmless damage);
- damage validation does not see (a flipped byte in a harmless place) harms no restore ("harmless").
``CorruptionCampaign`` is single-threaded.
"""
import json
import os
import random
import shutil
import time

from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.format import (
    chunk_name, index_name, manifest_name)
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.locks import LockSettings

from harness import MIB  # pylint: disable=import-error

KINDS = ("config", "key", "manifest", "index", "chunk", "lock")
DAMAGES = ("flip", "truncate", "delete")
CASE_TIMEOUT = 45
#: a damaged lock whose object is newer than this is held (its owner may be rewriting it): a case with such a
#: lock must wait that long before the product may go on (repo/locks.py's default stale_after)
LOCK_STALE_AFTER = LockSettings().stale_after


class CorruptionCampaign:
    """Rounds of KINDS x DAMAGES cases (at least one round) until the deadline; ``stats`` per kind, ``failures``."""

    def __init__(self, harness, seed, log):
        self.h = harness
        self.seed = seed
        self.rng = random.Random(seed)
        self.log = log
        self.stats = {kind: {"cases": 0, "detected": 0, "harmless": 0, "failed": 0} for kind in KINDS}
        self.failures = []

    def setup(self):
        self.repo = self.h.new_repo("local", "corruption-pristine")
        location = self.repo["location"]
        points = []
        for vm, write in (("lab-vm1", False), ("lab-vm1", True), ("lab-vm2", False)):
            if write:
                self.h.lab.write(vm, 0, 3 * MIB + 4096, 200000, seed=self.rng.randrange(1 << 30))
            state = self.h.checksums(vm)
            outcome = self.h.run_child(self.h.spec("backup", self.repo, vm=vm, run_id="corruption-%d" % len(points)))
            if not outcome.ok:
                raise RuntimeError("corruption set-up: backup failed: " + outcome.describe())
            rp_id = outcome.result["restore_point"]["id"]
            self.h.expect.record(location, rp_id, [state])
            points.append(rp_id)
        self.points = points
        holder = self.h.run_child(self.h.spec("hold_lock", self.repo), kill_after=0.05, ready_line=True)
        if not holder.killed:
            raise RuntimeError("corruption set-up: the lock holder ended: " + holder.describe())
        repository = self.h.open_repo(self.repo)
        try:
            self.key_id = repository.opened_key_id
            self.lock_id = repository.list_locks()[0]["id"]
            self.manifests = {rp_id: repository.load_manifest(rp_id) for rp_id in points}
            self.disks = [(rp_id, entry.key.value) for rp_id in points for entry in self.manifests[rp_id].disks]
            users = {}
            for rp_id, disk in self.disks:
                for digest in repository.load_disk_index(rp_id, disk):
                    if any(digest):
                        users.setdefault(repository.codec.storage_id(digest), set()).add((rp_id, disk))
        finally:
            repository.close()
        # the chunk of the guest write: referenced by the second point only, if dedup left such a chunk
        only_second = [chunk for chunk, used in users.items() if {rp for rp, _disk in used} == {points[1]}]
        self.chunk = sorted(only_second or users)[0]
        self.chunk_users = users[self.chunk]

    def targets(self, kind):
        """(object name, the (restore point, disk) pairs it affects) of ``kind``."""
        second = self.points[1]
        if kind == "config":
            return "config", set(self.disks)
        if kind == "key":
            return "keys/" + self.key_id, set(self.disks)
        if kind == "manifest":
            return manifest_name(second), {pair for pair in self.disks if pair[0] == second}
        if kind == "index":
            disk = self.manifests[second].disks[0].key.value
            return index_name(second, disk), {(second, disk)}
        if kind == "chunk":
            return chunk_name(self.chunk), set(self.chunk_users)
        return "locks/" + self.lock_id, set()

    def run(self, deadline):
        rounds = 0
        while rounds == 0 or time.monotonic() < deadline:
            for kind in KINDS:
                for damage in DAMAGES:
                    if rounds and time.monotonic() >= deadline:
                        return
                    case_seed = self.rng.randrange(1 << 32)
                    try:
                        self.case(kind, damage, case_seed)
                    except Exception as exc:  # pylint: disable=broad-except
                        self._fail(kind, damage, case_seed, ["the case raised %s: %s" % (type(exc).__name__, exc)])
            rounds += 1

    def case(self, kind, damage, case_seed):
        rng = random.Random(case_seed)
        name, affected = self.targets(kind)
        copy = dict(self.repo, location="%s-case-%d" % (self.repo["location"], case_seed))
        shutil.copytree(self.repo["location"], copy["location"])
        try:
            _damage(copy["location"] + "/" + name, damage, rng)
            timeout = CASE_TIMEOUT
            if kind == "lock" and damage != "delete":
                # half of the damaged locks are old (left by a crash long ago: ignored at once), half fresh (held
                # until their object is LOCK_STALE_AFTER old, the wait saying so; a flip that leaves valid JSON
                # is a lock of a live-looking owner, held as long): such a case may take that much longer
                timeout += LOCK_STALE_AFTER
                if rng.random() < 0.5:
                    old = time.time() - 2 * LOCK_STALE_AFTER
                    os.utime(copy["location"] + "/" + name, (old, old))
            scratch = self.h.workdir / "scratch-corruption"
            scratch.mkdir(exist_ok=True)
            spec = self.h.spec("corruption_case", copy, level="full", scratch=str(scratch),
                               points=[{"id": rp_id, "disk": disk} for rp_id, disk in self.disks])
            outcome = self.h.run_child(spec, timeout=timeout)
            self.stats[kind]["cases"] += 1
            if not outcome.ok:
                problems = ["the case did not finish in %d s or failed: %s" % (timeout, outcome.describe())]
                verdict = None
            else:
                problems, verdict = self.judge(kind, name, affected, outcome.result)
        finally:
            shutil.rmtree(copy["location"], ignore_errors=True)
        if problems:
            self._fail(kind, damage, case_seed, problems)
        else:
            self.stats[kind][verdict] += 1
            self.log("corrupt %-8s %-8s seed %10d: %s" % (kind, damage, case_seed, verdict))

    def judge(self, kind, name, affected, report):
        """(problems, "detected" | "harmless") of one case's report."""
        problems = []
        validation = report["validation"]
        text = json.dumps(validation)
        if validation["ok"]:
            result = validation["result"]
            detected = not result["ok"]
            reported = {a["restore_point"] for d in result["damaged"] for a in d["affects"]} | \
                       {e.get("restore_point") for e in result["errors"]}
            wrongly = reported - {rp for rp, _disk in affected} - {None}
            if wrongly:
                problems.append("validation reports undamaged restore points %s" % sorted(wrongly))
            if detected and kind == "chunk":
                entries = [d for d in result["damaged"] if d["object"] == name]
                pairs = {(a["restore_point"], a["disk"]) for d in entries for a in d["affects"]}
                if pairs != affected or not all(a["ranges"] for d in entries for a in d["affects"]):
                    problems.append("validation names %s affecting %s, expected %s with byte ranges"
                                    % (name, sorted(pairs), sorted(affected)))
        else:
            detected = True
            if not validation["typed"]:
                problems.append("validation raised an untyped %s: %s" % (validation["error_class"], validation["message"]))
        if detected and not _names(kind, name, text):
            problems.append("validation does not name %s: %s" % (name, text[:600]))
        harmed = False
        for restored in report["restores"]:
            pair = (restored["id"], restored["disk"])
            wanted = self._wanted(pair)
            if restored["ok"]:
                if restored["sha256"] != wanted:
                    problems.append("restore of %s disk %s wrote WRONG DATA" % pair)
                continue
            harmed = True
            if not restored["typed"]:
                untyped = pair + (restored["error_class"], restored["message"])
                problems.append("restore of %s disk %s raised an untyped %s: %s" % untyped)
            if pair not in affected:
                problems.append("restore of unaffected %s disk %s failed: %s" % (pair + (restored["message"],)))
            if restored["file_left"] or restored["partial_left"]:
                problems.append("a failed restore of %s disk %s left a file behind" % pair)
        if not detected and harmed:
            problems.append("validation reports ok (damage to %s not seen) but restores fail" % name)
        if not detected and kind in ("manifest", "index", "chunk") and harmed:
            problems.append("damage to %s is invisible to validation" % name)
        return problems, "detected" if detected else "harmless"

    def _wanted(self, pair):
        rp_id, disk = pair
        state = self.h.expect.get(self.repo["location"], rp_id)[0]
        position = [entry.key.value for entry in self.manifests[rp_id].disks].index(disk)
        return state[position]

    def _fail(self, kind, damage, case_seed, problems):
        self.stats[kind]["failed"] += 1
        self.failures.append({"phase": "corruption", "op": "%s %s" % (damage, kind), "case_seed": case_seed,
                              "torture_seed": self.seed, "problems": problems[:5]})
        self.log("corrupt %-8s %-8s seed %10d: FAILED: %s" % (kind, damage, case_seed, problems[0][:300]))


def _names(kind, name, text):
    """Whether a validation report (JSON text) names the damaged object."""
    lowered = text.lower()
    if name in text:
        return True
    if kind == "config":
        return "config" in lowered
    if kind == "key":
        return name.split("/")[1] in text or "key object" in lowered
    if kind == "chunk":
        return name.rpartition("/")[2] in text
    return False


def _damage(path, damage, rng):
    if damage == "delete":
        os.unlink(path)
        return
    with open(path, "r+b") as handle:
        data = handle.read()
        if damage == "truncate":
            handle.truncate(rng.randrange(len(data)))
        else:
            position = rng.randrange(len(data))
            handle.seek(position)
            handle.write(bytes([data[position] ^ (1 << rng.randrange(8))]))
