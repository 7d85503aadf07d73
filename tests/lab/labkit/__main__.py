"""labkit CLI: start/stop the lab simulator for `make lab` / `make lab-stop`.

    python tests/lab/labkit start --dir .lab [--port 0] [--vm1-disk0 1G] [--vm1-disk1 256M] [--vm2-disk0 256M]
                                  [--cbt-page-limit 4] [--seed 1]
    python tests/lab/labkit stop --dir .lab

start returns once the simulator is ready and writes DIR/env (`export K=V` lines for `. .lab/env`).
"""
import argparse
import pathlib
import shlex
import sys
import time

if __package__ in (None, ""):  # run as `python tests/lab/labkit`: make the package importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from labkit import Lab, LabError  # noqa: E402  pylint: disable=wrong-import-position


def main(argv=None):
    parser = argparse.ArgumentParser(prog="labkit", description="Start or stop the blockvault lab simulator.")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a lab in --dir and wait until it is ready")
    start.add_argument("--dir", required=True)
    start.add_argument("--port", type=int, default=0)
    start.add_argument("--vm1-disk0")
    start.add_argument("--vm1-disk1")
    start.add_argument("--vm2-disk0")
    start.add_argument("--cbt-page-limit", type=int)
    start.add_argument("--seed", type=int)
    start.add_argument("--timeout", type=float, default=90.0)
    stop = sub.add_parser("stop", help="stop the lab running in --dir")
    stop.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    directory = pathlib.Path(args.dir)
    env_file = directory / "env"
    try:
        if args.command == "start":
            began = time.monotonic()
            lab = Lab.start(directory, port=args.port, vm1_disk0=args.vm1_disk0, vm1_disk1=args.vm1_disk1,
                            vm2_disk0=args.vm2_disk0, page_limit=args.cbt_page_limit, seed=args.seed,
                            timeout=args.timeout, detach=True, reuse=True)
            lines = [f"export {k}={shlex.quote(v)}" for k, v in lab.env().items()]
            tmp = env_file.with_suffix(".tmp")
            tmp.write_text("\n".join(lines) + "\n")
            tmp.chmod(0o600)
            tmp.replace(env_file)
            state = "already running" if lab.process is None else "ready"
            print(f"lab {state} at {lab.info['url']} in {time.monotonic() - began:.1f} s (pid {lab.pid}); "
                  f"run: . {env_file}")
        else:
            if not (directory / "lab.json").exists():
                print(f"no lab runs in {directory}", file=sys.stderr)
                env_file.unlink(missing_ok=True)
                return 0
            Lab.attach(directory).stop()
            env_file.unlink(missing_ok=True)
            print(f"lab in {directory} stopped")
    except LabError as exc:
        print(f"labkit: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
