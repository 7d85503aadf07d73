"""The torture's summary: a table on stdout and tests/torture/results/last.json. Plain functions."""
import json
import pathlib

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def summary(meta, kills, corruption, concurrency, fuzz, failures):
    """The JSON-able summary of a run (what last.json holds)."""
    landed = sum(entry["landed"] for entry in kills.values())
    held = sum(entry["held"] for entry in kills.values())
    return dict(meta, kill_points={"tried": sum(e["tried"] for e in kills.values()), "landed": landed, "held": held,
                                   "per_operation": kills},
                corruption=corruption, concurrency=concurrency, fuzz=fuzz,
                failures=failures, failed=len(failures))


def table(data):
    """Text lines of the summary table."""
    lines = ["", "torture summary  (seed %s, budget %s s, ran %.0f s, S3: %s)" % (
        data["seed"], data["budget_s"], data["elapsed_s"], data["s3"]), ""]
    lines.append("%-20s %6s %7s %6s %7s %7s" % ("kill points", "tried", "landed", "held", "failed", "missed"))
    for op, entry in data["kill_points"]["per_operation"].items():
        counts = tuple(entry[name] for name in ("tried", "landed", "held", "failed", "missed"))
        lines.append("%-20s %6d %7d %6d %7d %7d" % ((op,) + counts))
        lines += ["%-20s   note: %s" % ("", note) for note in entry["notes"]]
    kp = data["kill_points"]
    lines.append("%-20s %6d %7d %6d" % ("total", kp["tried"], kp["landed"], kp["held"]))
    lines += ["", "%-20s %6s %9s %9s %7s" % ("corruption", "cases", "detected", "harmless", "failed")]
    for kind, entry in data["corruption"].items():
        lines.append("%-20s %6d %9d %9d %7d" % (kind, entry["cases"], entry["detected"], entry["harmless"], entry["failed"]))
    conc = data["concurrency"]
    lines += ["", "concurrency: %.1f min; restore points byte-exact %d, pruned before their check %d" % (
        conc["minutes"], conc["points"]["verified"], conc["points"]["pruned_before_check"])]
    for what, entry in sorted(conc["operations"].items()):
        lines.append("  %-36s ok %4d  refused %3d  failed %3d" % (what, entry["ok"], entry["refused"], entry["failed"]))
    fuzz = data["fuzz"]
    lines += ["", "fuzz: %s, %d cases (seed %s) %s" % (fuzz["outcome"], fuzz["examples"], fuzz["seed"], fuzz.get("tests") or "")]
    lines += ["", "failures: %d" % data["failed"]]
    for failure in data["failures"]:
        where = failure.get("backend") or ""
        replay = "TORTURE_SEED=%s" % failure["torture_seed"]
        seed = " case seed %s" % failure["case_seed"] if "case_seed" in failure else ""
        lines.append("  [%s] %s %s%s (%s): %s" % (failure["phase"], failure["op"], where, seed, replay,
                                                  failure["problems"][0][:400]))
    return lines


def write(data, path=None):
    path = pathlib.Path(path) if path else RESULTS / "last.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    return path
