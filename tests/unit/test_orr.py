"""The ORR: checklist shape, answers from evidence, the pull-request gate, and the custom lens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from aws_cdk import App, CfnResource, Stack

from opex_cdk.orr import custom_lens, evaluate, load_checklist
from opex_cdk.orr.__main__ import main
from opex_cdk.orr.evaluator import CHECKLIST, MAX_QUESTIONS, ChecklistError

REPO = Path(__file__).resolve().parents[2]


def test_checklist_is_small_grouped_and_linked() -> None:
    data = load_checklist()
    questions = [q for g in data["groups"] for q in g["questions"]]
    assert len(questions) <= MAX_QUESTIONS
    assert [g["id"] for g in data["groups"]] == ["architecture", "release", "events"]
    assert all(q["lessons"] and all(lesson["url"].startswith("https://") for lesson in q["lessons"]) for q in questions)
    titles = {lesson["title"] for q in questions for lesson in q["lessons"]}
    assert any("IaC drift" in t for t in titles) and any("REL 300" in t for t in titles)


def test_checklist_errors_name_the_question(tmp_path: Path) -> None:
    data = yaml.safe_load(CHECKLIST.read_text())
    data["groups"][0]["questions"][0]["evidence"] = {"kind": "query", "query": "made_up"}
    bad = tmp_path / "checklist.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ChecklistError, match="ARCH-01.evidence.query: 'made_up' is not allowed; allowed: "):
        load_checklist(bad)


def test_every_automated_question_is_answered_from_evidence(synthesized, tmp_path: Path) -> None:
    e = synthesized["prod"]
    answers = evaluate(Path(e.assembly.directory), repo=REPO, gameday_report=tmp_path / "none.json", production=True)
    by_kind: dict[str, list] = {}
    for a in answers:
        by_kind.setdefault(a.evidence_kind, []).append(a)
    for a in by_kind["nag"] + by_kind["query"] + by_kind["test"]:
        assert a.evidence, a.id
        assert (a.answer, a.risk) == ("Yes", "NONE"), (a.id, a.action_items)
    assert all(a.risk == "NOT_EVALUATED" and "make gameday" in a.answer for a in by_kind["gameday"])
    assert all(a.risk == "UNANSWERED" for a in by_kind["manual"])
    arch_01 = next(a for a in answers if a.id == "ARCH-01")
    assert any(p.startswith("opex-prod-app/") for p in arch_01.evidence)


def _bare_assembly(tmp_path: Path) -> Path:
    app = App(outdir=str(tmp_path / "cdk.out"))
    CfnResource(Stack(app, "opex-dev-lonely"), "Topic", type="AWS::SNS::Topic")
    app.synth()
    return tmp_path / "cdk.out"


def test_high_risk_blocks_and_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "orr-report"
    code = main(["--cdk-out", str(_bare_assembly(tmp_path)), "--out", str(out), "--env", "dev"])
    assert code == 1
    report = json.loads((out / "orr.json").read_text())
    assert "EVT-01" in report["summary"]["blocking"]
    evt = next(a for a in report["answers"] if a["id"] == "EVT-01")
    assert evt["risk"] == "HIGH" and any("opex-dev-lonely/Topic" in item for item in evt["action_items"])
    assert "BLOCKED by" in (out / "orr.md").read_text() and "<table>" in (out / "orr.html").read_text()


def test_accepted_high_risk_does_not_block(tmp_path: Path) -> None:
    data = yaml.safe_load(CHECKLIST.read_text())
    for group in data["groups"]:
        for q in group["questions"]:
            q["accepted"] = {"reason": "bare test assembly: nothing here is meant to launch"}
    checklist = tmp_path / "checklist.yaml"
    checklist.write_text(yaml.safe_dump(data))
    code = main(["--cdk-out", str(_bare_assembly(tmp_path)), "--out", str(tmp_path / "o"), "--env", "dev",
                 "--checklist", str(checklist)])  # fmt: skip
    assert code == 0


def test_custom_lens_follows_the_well_architected_format() -> None:
    lens = custom_lens(load_checklist())
    assert lens["schemaVersion"] == "2021-11-01" and len(lens["name"]) <= 128
    assert {p["id"] for p in lens["pillars"]} == {"reliability", "operationalExcellence"}
    ids = []
    for pillar in lens["pillars"]:
        for q in pillar["questions"]:
            ids.append(q["id"])
            assert q["choices"] and all(c["improvementPlan"]["displayText"] for c in q["choices"])
            conditions = [r["condition"] for r in q["riskRules"]]
            assert conditions[-1] == "default" and conditions[0] == q["choices"][0]["id"]
            assert {r["risk"] for r in q["riskRules"]} <= {"NO_RISK", "MEDIUM_RISK", "HIGH_RISK"}
    assert len(ids) == len(set(ids)) <= MAX_QUESTIONS
