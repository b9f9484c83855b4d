"""`python -m opex_cdk.orr`: answer the ORR from cdk.out, write orr-report/, exit 1 on an unaccepted high risk.

Usable as a pull-request gate after `cdk synth`. Options: --cdk-out, --gameday-report, --out, --env
(default: the environment cdk.out was synthesized for, from cdk.json's `env`), --checklist.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from opex_cdk.orr.evaluator import CHECKLIST, ChecklistError, evaluate, load_checklist, to_json
from opex_cdk.orr.render import custom_lens, html_page, markdown

REPO = Path(__file__).resolve().parents[2]


def _environment(cdk_out: Path, requested: str | None) -> tuple[str, bool]:
    """(name, production) of the environment: --env, else the stacks' prefix in cdk.out, else cdk.json's env."""
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    environments = context.get("environments", {})
    name = requested
    if name is None and (cdk_out / "manifest.json").is_file():
        artifacts = json.loads((cdk_out / "manifest.json").read_text()).get("artifacts", {})
        name = next(
            (n for n, e in environments.items() if any(a.startswith(e["prefix"] + "-") for a in artifacts)), None
        )
    name = name or context.get("env", "dev")
    if name not in environments:
        raise SystemExit(f"orr: unknown environment '{name}'; allowed: {', '.join(environments)}")
    return name, environments[name].get("production") is True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opex_cdk.orr", description=__doc__)
    parser.add_argument("--cdk-out", type=Path, default=REPO / "cdk.out")
    parser.add_argument("--gameday-report", type=Path, default=REPO / "gameday-report" / "report.json")
    parser.add_argument("--out", type=Path, default=REPO / "orr-report")
    parser.add_argument("--env", default=None)
    parser.add_argument("--checklist", type=Path, default=CHECKLIST)
    args = parser.parse_args(argv)
    try:
        checklist = load_checklist(args.checklist)
        env, production = _environment(args.cdk_out, args.env)
        answers = evaluate(
            args.cdk_out, repo=REPO, gameday_report=args.gameday_report, production=production, checklist=args.checklist
        )
    except (ChecklistError, FileNotFoundError) as error:
        print(f"orr: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    report = to_json(answers)
    report["environment"] = env
    (args.out / "orr.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (args.out / "orr.md").write_text(markdown(answers, environment=env))
    (args.out / "orr.html").write_text(html_page(answers, environment=env))
    (args.out / "custom-lens.json").write_text(json.dumps(custom_lens(checklist), indent=2) + "\n")
    summary = report["summary"]
    print(f"orr: {summary['questions']} questions, risks {summary['risks']}; report in {args.out}/")
    if summary["blocking"]:
        print(f"orr: BLOCKED by unaccepted high risk: {', '.join(summary['blocking'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
