"""The torture suite (``make torture``): kill -9 points, mixed concurrency, corruption cases and the fuzz campaign,
within a budget of TORTURE_S seconds, from a seed printed first so a failure replays with TORTURE_SEED=<seed>.

Variables: TORTURE_S (default 900), TORTURE_SEED (default random), TORTURE_S3 (moto | seaweedfs, default moto),
TORTURE_FUZZ_EXAMPLES (default: what the fuzz share of the budget allows, at least 5,000), TORTURE_SHARES (the budget's
split, default "kills=0.45,concurrency=0.25,corruption=0.15,fuzz=0.15"), TORTURE_OPS (the kill cases' operations,
comma-separated, default all of kills.OPERATIONS), TORTURE_WORKDIR (default a temporary
directory, removed at the end unless a case failed). Exit status 1 when any case failed.

The seed decides every random choice (operations' order, kill delays, writes, damage offsets); kill points land in
real time, so a replay repeats the same cases with the same delays, not necessarily the same instruction killed.
"""
import datetime
import os
import pathlib
import random
import shutil
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[0] / "lab"), str(HERE.parents[1] / "build" / "collections")]

# pylint: disable=wrong-import-position,import-error
from harness import Harness
from kills import OPERATIONS, KillCampaign
from concurrency import ConcurrencyCampaign
from corruption import CorruptionCampaign
from fuzz import run_fuzz
import report

FUZZ_CASES_PER_SECOND = 100     # what the fuzz module ran on the shared 2-core machine (docs/testing.md)


def shares():
    text = os.environ.get("TORTURE_SHARES", "kills=0.45,concurrency=0.25,corruption=0.15,fuzz=0.15")
    return {name: float(value) for name, value in (part.split("=") for part in text.split(","))}


def log(line):
    print("[%s] %s" % (datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S"), line), flush=True)


def main():
    budget = float(os.environ.get("TORTURE_S", "900"))
    seed = int(os.environ.get("TORTURE_SEED") or random.SystemRandom().randrange(1 << 32))
    s3_kind = os.environ.get("TORTURE_S3", "moto")
    split = shares()
    log("torture: seed %d, budget %.0f s (replay: make torture TORTURE_SEED=%d TORTURE_S=%.0f)" % (seed, budget, seed, budget))
    started = time.monotonic()
    end = started + budget
    rng = random.Random(seed)
    seeds = {name: rng.randrange(1 << 32) for name in ("kills", "concurrency", "corruption", "fuzz")}
    workdir = pathlib.Path(os.environ.get("TORTURE_WORKDIR") or tempfile.mkdtemp(prefix="blockvault-torture-"))
    failures = []
    harness = Harness(workdir, s3_kind)
    corruption = CorruptionCampaign(harness, seeds["corruption"], log)
    concurrency = ConcurrencyCampaign(harness, seeds["concurrency"], log)
    kills = KillCampaign(harness, seeds["kills"], log)
    fuzz_s = budget * split["fuzz"]
    examples = int(os.environ.get("TORTURE_FUZZ_EXAMPLES") or max(5000, int(fuzz_s * FUZZ_CASES_PER_SECOND)))
    fuzz = {"outcome": "not run", "examples": 0, "seed": seeds["fuzz"]}

    def phase(name, action):
        try:
            action()
        except Exception as exc:  # pylint: disable=broad-except  # a phase that cannot run is a failure, said so
            log("%s: the phase stopped: %s: %s" % (name, type(exc).__name__, exc))
            failures.append({"phase": name, "op": "set-up", "torture_seed": seed, "problems": ["%s: %s" % (type(exc).__name__, exc)]})

    def fuzz_phase():
        fuzz.update(run_fuzz(examples, seeds["fuzz"], max(600.0, 3 * fuzz_s), log))
        if fuzz["outcome"] in ("failed", "timeout"):
            failures.append({"phase": "fuzz", "op": "parsers", "torture_seed": seed, "case_seed": seeds["fuzz"],
                             "problems": [fuzz["tail"][-1500:]]})

    def kills_phase():
        kills.setup()
        try:
            selected = os.environ.get("TORTURE_OPS")
            kills.run(max(end, time.monotonic() + 60),
                      tuple(selected.split(",")) if selected else OPERATIONS)
        finally:
            kills.close()

    try:
        phase("fuzz", fuzz_phase)
        phase("corruption", lambda: (corruption.setup(), corruption.run(time.monotonic() + budget * split["corruption"])))
        failures += corruption.failures
        phase("concurrency", lambda: concurrency.run(budget * split["concurrency"]))
        failures += concurrency.failures
        log("concurrency: %.1f min done" % (concurrency.seconds / 60))
        phase("kills", kills_phase)
        failures += kills.failures
    finally:
        harness.close()
    for failure in failures:        # a campaign knows its own seed; the whole run replays from the run's
        failure["phase_seed"] = failure.pop("torture_seed", None)
        failure["torture_seed"] = seed
    data = report.summary({"seed": seed, "budget_s": budget, "elapsed_s": time.monotonic() - started, "s3": s3_kind,
                           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                           "phase_seeds": seeds},
                          kills.stats, corruption.stats,
                          {"minutes": concurrency.seconds / 60, "operations": concurrency.counts,
                           "points": concurrency.points}, fuzz, failures)
    for line in report.table(data):
        print(line)
    path = report.write(data)
    print("\nwritten to %s" % path)
    if failures:
        print("workdir kept for inspection: %s" % workdir)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
