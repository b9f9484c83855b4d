"""Answer the ORR checklist from evidence: the synthesized app, the test suite, the game-day report.

Each question names how it is evidenced (``evidence.kind`` in checklist.yaml):

- ``nag``: our WellArchitected rules over ``cdk.out``; evidence = the resources the rules judged, and
  the findings (acknowledged ones keep their reason);
- ``query``: a named check over the templates (or the code), see :data:`QUERIES`;
- ``test``: a test in the suite; evidence = it exists (``make test`` runs it on every pull request);
- ``gameday``: an expectation of ``gameday-report/report.json``; without the report the question is
  "not evaluated (run make gameday)", not a risk: a rehearsal is evidence, its absence is not a failure;
- ``manual``: a person answers at the review; reported as unanswered with who answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from opex_cdk.nag.cloud_assembly import read_assembly
from opex_cdk.nag.well_architected import AppModel, evaluate_model, find_rule

CHECKLIST = Path(__file__).with_name("checklist.yaml")
RISKS = ("HIGH", "MEDIUM", "NONE", "UNANSWERED", "NOT_EVALUATED")
EVIDENCE_KINDS = ("nag", "query", "test", "gameday", "manual")
MAX_QUESTIONS = 30
_COMPUTE = ("AWS::AutoScaling::AutoScalingGroup", "AWS::EC2::Instance", "AWS::ECS::Service")


class ChecklistError(ValueError):
    """The checklist is malformed: the message names the question and the field."""


@dataclass
class Answer:
    """The answer to one question: what we found, the resulting risk, and the evidence."""

    id: str
    group: str
    pillar: str
    title: str
    guidance: str
    risk_if_bad: str
    answer: str
    risk: str
    evidence_kind: str
    evidence: list[str] = field(default_factory=list)
    lessons: list[dict[str, str]] = field(default_factory=list)
    action_items: list[str] = field(default_factory=list)
    accepted: str | None = None

    @property
    def blocking(self) -> bool:
        return self.risk == "HIGH" and self.accepted is None


@dataclass
class Context:
    """What the evaluator reads: the app model, the game-day report (if any) and the repository."""

    model: AppModel
    repo: Path
    gameday: dict[str, Any] | None
    production: bool


# --------------------------------------------------------------------------------------------------
# Checklist
# --------------------------------------------------------------------------------------------------


def load_checklist(path: Path = CHECKLIST) -> dict[str, Any]:
    """Read and validate the checklist (≤ 30 questions, known evidence kinds and risks, unique ids)."""
    data = yaml.safe_load(path.read_text())
    questions = [(g, q) for g in data.get("groups") or [] for q in g.get("questions") or []]
    if not questions or len(questions) > MAX_QUESTIONS:
        raise ChecklistError(f"{path}: {len(questions)} questions; allowed: 1 to {MAX_QUESTIONS}")
    seen: set[str] = set()
    for _, q in questions:
        qid = q.get("id", "?")
        if qid in seen:
            raise ChecklistError(f"{qid}: duplicate question id")
        seen.add(qid)
        for key in ("title", "guidance", "risk", "lessons", "evidence", "pillar"):
            if not q.get(key):
                raise ChecklistError(f"{qid}.{key}: missing")
        if q["risk"] not in ("HIGH", "MEDIUM"):
            raise ChecklistError(f"{qid}.risk: '{q['risk']}' is not allowed; allowed: HIGH, MEDIUM")
        kind = q["evidence"].get("kind")
        if kind not in EVIDENCE_KINDS:
            raise ChecklistError(f"{qid}.evidence.kind: '{kind}' is not allowed; allowed: {', '.join(EVIDENCE_KINDS)}")
        if kind == "nag":
            for rule in q["evidence"].get("rules") or []:
                find_rule(rule)
        if kind == "query" and q["evidence"].get("query") not in QUERIES:
            raise ChecklistError(
                f"{qid}.evidence.query: '{q['evidence'].get('query')}' is not allowed; allowed: {', '.join(QUERIES)}"
            )
        if kind == "manual" and not q["evidence"].get("owner"):
            raise ChecklistError(f"{qid}.evidence.owner: missing (who answers a manual question)")
        accepted = q.get("accepted")
        if accepted is not None and not (isinstance(accepted, dict) and str(accepted.get("reason", "")).strip()):
            raise ChecklistError(f"{qid}.accepted: needs a reason")
    return data


# --------------------------------------------------------------------------------------------------
# Queries over the templates (and the code): name -> (ok, evidence, what is wrong)
# --------------------------------------------------------------------------------------------------

QueryResult = tuple[bool, list[str], list[str]]


def _stateful_stacks_separate(ctx: Context) -> QueryResult:
    evidence, wrong = [], []
    for name in ctx.model.stacks:
        types = {r.type for r in ctx.model.by_id.values() if r.stack == name}
        data = sorted(
            r.path for r in ctx.model.by_id.values() if r.stack == name and r.type.startswith("AWS::DynamoDB::")
        )
        if data:
            evidence += data
            if types & set(_COMPUTE):
                wrong.append(f"{name} holds both a table and compute ({', '.join(sorted(types & set(_COMPUTE)))})")
    return not wrong and bool(evidence), evidence, wrong or ([] if evidence else ["no table found in the app"])


def _production_termination_protection(ctx: Context) -> QueryResult:
    # Tables are the workload's data; log groups and a cell's access-log bucket go with their stack.
    holding = sorted({r.stack for r in ctx.model.by_id.values() if r.type.startswith("AWS::DynamoDB::")})
    evidence = [f"{s}: terminationProtection={ctx.model.stacks[s].termination_protection}" for s in holding]
    if not ctx.production:
        return True, evidence + ["(not a production environment: protection not required)"], []
    wrong = [
        f"{s} holds data without termination protection"
        for s in holding
        if not ctx.model.stacks[s].termination_protection
    ]
    return not wrong, evidence, wrong


def _alarms_name_runbooks(ctx: Context) -> QueryResult:
    evidence, wrong = [], []
    for alarm in ctx.model.of_type("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
        description = json.dumps(alarm.props.get("AlarmDescription", ""))
        match = re.search(r"docs/runbooks/[\w./-]+\.md", description)
        if match and (ctx.repo / match.group(0)).is_file():
            evidence.append(f"{alarm.path} -> {match.group(0)}")
        else:
            wrong.append(f"{alarm.path}: no existing docs/runbooks/*.md in its description")
    return not wrong, evidence, wrong


def _sdk_timeouts_in_code(ctx: Context) -> QueryResult:
    """Every module that creates a boto3 client also sets connect/read timeouts and a retry mode."""
    evidence, wrong = [], []
    files = sorted((ctx.repo / "webapp").glob("*.py")) + sorted((ctx.repo / "lambda").glob("*/index.py"))
    for path in files:
        text = path.read_text()
        if "boto3.client(" not in text and "session.client(" not in text:
            continue
        rel = str(path.relative_to(ctx.repo))
        configured = all(k in text for k in ("connect_timeout", "read_timeout")) and "retries" in text
        (evidence if configured else wrong).append(rel if configured else f"{rel}: client without explicit timeouts")
    return not wrong and bool(evidence), evidence, wrong or ([] if evidence else ["no boto3 client found"])


def _audit_trail(ctx: Context) -> QueryResult:
    trails = [t for t in ctx.model.of_type("AWS::CloudTrail::Trail") if t.props.get("CloudWatchLogsLogGroupArn")]
    filters = list(ctx.model.of_type("AWS::Logs::MetricFilter"))
    evidence = [t.path for t in trails] + [f.path for f in filters]
    wrong = []
    if not trails:
        wrong.append("no CloudTrail trail delivering to CloudWatch Logs")
    if not filters:
        wrong.append("no metric filters over the trail's log group")
    return not wrong, evidence, wrong


QUERIES: dict[str, Callable[[Context], QueryResult]] = {
    "stateful_stacks_separate": _stateful_stacks_separate,
    "production_termination_protection": _production_termination_protection,
    "alarms_name_runbooks": _alarms_name_runbooks,
    "sdk_timeouts_in_code": _sdk_timeouts_in_code,
    "audit_trail": _audit_trail,
}


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


def _answer_nag(q: dict[str, Any], ctx: Context, findings: list[Any]) -> tuple[bool, list[str], list[str]]:
    rules = [find_rule(r) for r in q["evidence"]["rules"]]
    judged = sorted({r.path for rule in rules for r in ctx.model.of_type(*rule.types)})
    mine = [f for f in findings if f.rule_id in {r.rule_id for r in rules}]
    open_ = [f"{f.rule_id}: {f.construct_path} - {find_rule(f.rule_id).info}" for f in mine if f.acknowledged is None]
    evidence = judged + [
        f"{f.rule_id} acknowledged on {f.construct_path}: {f.acknowledged}" for f in mine if f.acknowledged
    ]
    return not open_, evidence, open_


def _answer_test(q: dict[str, Any], ctx: Context) -> QueryResult:
    file_part, _, name = q["evidence"]["test"].partition("::")
    path = ctx.repo / file_part
    found = path.is_file() and re.search(rf"^def {re.escape(name)}\(", path.read_text(), re.MULTILINE) is not None
    return found, [q["evidence"]["test"]] if found else [], [] if found else [f"{q['evidence']['test']} not found"]


def evaluate(
    cdk_out: Path,
    *,
    repo: Path,
    gameday_report: Path | None = None,
    production: bool = False,
    checklist: Path = CHECKLIST,
) -> list[Answer]:
    """Answer every question of ``checklist`` from the assembly in ``cdk_out`` (and the game-day report)."""
    data = load_checklist(checklist)
    model = AppModel.from_stacks(read_assembly(cdk_out), production)
    gameday = json.loads(gameday_report.read_text()) if gameday_report and gameday_report.is_file() else None
    ctx = Context(model=model, repo=repo, gameday=gameday, production=production)
    findings = evaluate_model(model)
    answers = []
    for group in data["groups"]:
        for q in group["questions"]:
            kind = q["evidence"]["kind"]
            accepted = (q.get("accepted") or {}).get("reason")
            answer = Answer(
                id=q["id"],
                group=group["title"],
                pillar=q["pillar"],
                title=q["title"],
                guidance=q["guidance"],
                risk_if_bad=q["risk"],
                answer="",
                risk="NONE",
                evidence_kind=kind,
                lessons=q["lessons"],
                accepted=accepted,
            )
            if kind == "manual":
                answer.answer, answer.risk = f"Manual: answered by {q['evidence']['owner']}", "UNANSWERED"
            elif kind == "gameday" and gameday is None:
                answer.answer, answer.risk = "Not evaluated (run make gameday)", "NOT_EVALUATED"
            else:
                if kind == "nag":
                    ok, evidence, wrong = _answer_nag(q, ctx, findings)
                elif kind == "query":
                    ok, evidence, wrong = QUERIES[q["evidence"]["query"]](ctx)
                elif kind == "test":
                    ok, evidence, wrong = _answer_test(q, ctx)
                else:
                    ok, evidence, wrong = _answer_gameday(q, gameday or {})
                answer.evidence = evidence
                answer.answer = "Yes" if ok else "No"
                answer.risk = "NONE" if ok else q["risk"]
                answer.action_items = [f"Fix: {w}. Guidance: {q['guidance']}" for w in wrong] if not ok else []
            answers.append(answer)
    return answers


def _answer_gameday(q: dict[str, Any], report: dict[str, Any]) -> QueryResult:
    prefix = q["evidence"]["expectation"]
    matches = [e for e in report.get("expectations") or [] if str(e.get("name", "")).startswith(prefix)]
    if not matches:
        return False, [], [f"the game-day report has no expectation '{prefix}' (scenario not run?)"]
    evidence = [f"gameday: {e['name']}: expected {e['expected']}, measured {e['measured']}" for e in matches]
    wrong = [f"game day: {e['name']} measured {e['measured']}" for e in matches if not e.get("ok")]
    return not wrong, evidence, wrong


def to_json(answers: list[Answer]) -> dict[str, Any]:
    """The machine-readable report: every answer and the summary the gate uses."""
    counts = {risk: sum(1 for a in answers if a.risk == risk) for risk in RISKS}
    return {
        "summary": {
            "questions": len(answers),
            "risks": counts,
            "blocking": [a.id for a in answers if a.blocking],
            "passed": not any(a.blocking for a in answers),
        },
        "answers": [{**asdict(a), "blocking": a.blocking} for a in answers],
    }
