"""``python -m gameday``: rehearse the chaos lab locally and write ``gameday-report/``.

Exit codes: 0 every expectation met; 1 an expectation failed (the report says which); 2 the game day
could not run (no cdk.out, no HAProxy, a busy port, a process that would not start); 130 interrupted.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .fleet import FleetError
from .haproxy import HaproxyError, haproxy_binary
from .harness import GamedayError, Harness
from .report import write_report
from .scenario import PHASE_NAMES, PROFILES
from .settings import SettingsError, load_health_check_settings


def _phase_seconds(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected NAME=SECONDS, NAME one of {', '.join(PHASE_NAMES)}"
        ) from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gameday", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full", help="phase lengths (default: full)")
    parser.add_argument("--cdk-out", default="cdk.out", help="synthesized cloud assembly (default: cdk.out)")
    parser.add_argument("--out", default="gameday-report", help="report directory (default: gameday-report)")
    parser.add_argument("--port", type=int, default=None, help="HAProxy port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--rate", type=float, default=None, help="requests per second (default: the profile's)")
    parser.add_argument(
        "--phase-seconds",
        type=_phase_seconds,
        action="append",
        default=[],
        metavar="NAME=SECONDS",
        help="minimum length of a phase (repeatable); phases also wait for their goal",
    )
    parser.add_argument("--keep-run-dir", action="store_true", help="keep process logs and haproxy.cfg")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        profile = PROFILES[args.profile].with_min_seconds(dict(args.phase_seconds))
        if args.rate is not None:
            from dataclasses import replace

            if not 1 <= args.rate <= 500:
                raise ValueError(f"--rate: {args.rate} is not allowed; allowed: 1-500")
            profile = replace(profile, rate=args.rate)
        settings = load_health_check_settings(args.cdk_out)
        haproxy_binary()
    except (ValueError, SettingsError, HaproxyError) as error:
        print(f"gameday: {error}", file=sys.stderr)
        return 2
    out = Path(args.out)
    run_dir = Path(tempfile.mkdtemp(prefix="gameday-run-"))
    print(f"gameday: {profile.name} profile, {profile.rate:g} req/s; process logs in {run_dir}")
    harness = Harness(settings, profile, run_dir, port=args.port)
    try:
        result = harness.run()
    except KeyboardInterrupt:
        print("gameday: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130
    except (GamedayError, HaproxyError, FleetError, OSError) as error:
        print(f"gameday: could not run: {error} (logs: {run_dir})", file=sys.stderr)
        return 2
    report = write_report(result, out)
    if not args.keep_run_dir and report["passed"]:
        shutil.rmtree(run_dir, ignore_errors=True)
    print((out / "report.md").read_text(encoding="utf-8"))
    failed = [e for e in report["expectations"] if not e["ok"]]
    for e in failed:
        print(f"gameday: FAILED: {e['name']}: expected {e['expected']}, measured {e['measured']}", file=sys.stderr)
    print(f"gameday: report in {out}/ (report.md, report.json, timeline.png)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
