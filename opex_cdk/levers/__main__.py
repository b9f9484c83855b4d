"""`python -m opex_cdk.levers`: the command line over :class:`opex_cdk.levers.Levers`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from opex_cdk.config import ConfigError, load_environment
from opex_cdk.levers.core import EXPERIMENT_NAMES, LeverError, Levers
from opex_cdk.project_context import load_project_context


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m opex_cdk.levers",
        description="Operator levers: the dependency flag, one instance's role, the FIS experiments.",
    )
    p.add_argument("--env", default=None, help="environment in cdk.json (default: the context's env, then dev)")
    p.add_argument("--region", default=None, help="override the environment's region")
    sub = p.add_subparsers(dest="command", required=True)
    flag = sub.add_parser("flag", help="switch the dependency on or off (RecommendationServiceEnabled)")
    flag.add_argument("state", choices=("on", "off"))
    role = sub.add_parser("fault-role", help="swap one instance to the no-DynamoDB profile, or restore it")
    role.add_argument("action", choices=("swap", "restore"))
    role.add_argument("--instance-id", required=True)
    exp = sub.add_parser("experiment", help="list or start the FIS experiments")
    exp_sub = exp.add_subparsers(dest="experiment_command", required=True)
    exp_sub.add_parser("list", help="the experiments and their template ids")
    start = exp_sub.add_parser("start", help="start one experiment")
    start.add_argument("name", choices=EXPERIMENT_NAMES)
    start.add_argument("--follow", action="store_true", help="print state changes until it ends")
    start.add_argument("--poll-seconds", type=float, default=5.0)
    return p


def main(argv: Sequence[str] | None = None, *, levers: Levers | None = None) -> int:
    """Run one command; exit status 0 on success, 1 on a lever error (one line on stderr), 2 on usage."""
    args = parser().parse_args(argv)
    try:
        if levers is None:
            config = load_environment(load_project_context(), args.env)
            levers = Levers(
                f"{config.prefix}-resilience",
                args.region or config.region,
                flag_parameter_name=config.data.flag_parameter_name,
            )
        if args.command == "flag":
            name, old, new = levers.set_flag(args.state == "on")
            print(f"{name}: {old} -> {new}")
        elif args.command == "fault-role":
            old, new = levers.swap_profile(args.instance_id, fault=args.action == "swap")
            print(f"{args.instance_id}: {old} -> {new}")
        elif args.experiment_command == "list":
            for name, template_id in levers.experiment_templates().items():
                print(f"{name:24} {template_id}")
        else:
            experiment_id = levers.start_experiment(args.name)
            print(f"started {args.name}: {experiment_id}")
            if args.follow:
                status = levers.follow(
                    experiment_id,
                    on_change=lambda s, r: print(f"{experiment_id}: {s}{' - ' + r if r else ''}", flush=True),
                    poll_seconds=args.poll_seconds,
                )
                return 0 if status == "completed" else 1
        return 0
    except (LeverError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
