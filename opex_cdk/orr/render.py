"""Render the ORR answers: Markdown, a one-page HTML, and a Well-Architected Tool custom lens."""

from __future__ import annotations

import html
import re
from typing import Any

from opex_cdk.orr.evaluator import Answer

_ICON = {"HIGH": "🔴", "MEDIUM": "🟠", "NONE": "🟢", "UNANSWERED": "⚪", "NOT_EVALUATED": "⚪"}
LENS_SCHEMA_VERSION = "2021-11-01"
_PILLAR_NAMES = {"reliability": "Reliability", "operationalExcellence": "Operational excellence"}


def _summary(answers: list[Answer]) -> str:
    counts: dict[str, int] = {}
    for a in answers:
        counts[a.risk] = counts.get(a.risk, 0) + 1
    blocking = [a.id for a in answers if a.blocking]
    parts = ", ".join(f"{n} {risk.lower().replace('_', ' ')}" for risk, n in sorted(counts.items()))
    verdict = f"BLOCKED by {', '.join(blocking)}" if blocking else "no unaccepted high risk"
    return f"{len(answers)} questions: {parts}. Verdict: {verdict}."


def markdown(answers: list[Answer], *, environment: str) -> str:
    """The report as Markdown: a summary table, then per question the answer, evidence and actions."""
    lines = [
        f"# Operational Readiness Review — {environment}",
        "",
        _summary(answers),
        "",
        "| id | question | answer | risk |",
        "|---|---|---|---|",
    ]
    for a in answers:
        accepted = " (accepted)" if a.accepted else ""
        lines.append(f"| {a.id} | {a.title} | {a.answer} | {_ICON[a.risk]} {a.risk}{accepted} |")
    for a in answers:
        lines += ["", f"## {a.id} {a.title}", "", f"*{a.group} · {a.pillar} · risk if not: {a.risk_if_bad}*", ""]
        lines += [f"**Answer:** {a.answer} — **risk:** {a.risk}", "", f"Guidance: {a.guidance}", ""]
        if a.accepted:
            lines += [f"Accepted: {a.accepted}", ""]
        if a.evidence:
            lines.append(f"Evidence ({a.evidence_kind}):")
            lines += [f"- `{e}`" for e in a.evidence[:25]]
            if len(a.evidence) > 25:
                lines.append(f"- … and {len(a.evidence) - 25} more (orr.json has all)")
            lines.append("")
        if a.action_items:
            lines.append("Action items:")
            lines += [f"- [ ] {item}" for item in a.action_items]
            lines.append("")
        lines.append("Why we ask: " + "; ".join(f"[{x['title']}]({x['url']})" for x in a.lessons))
    return "\n".join(lines) + "\n"


def html_page(answers: list[Answer], *, environment: str) -> str:
    """One self-contained page: summary, one row per question, actions for high risks."""
    rows = []
    for a in answers:
        evidence = "<br>".join(html.escape(e) for e in a.evidence[:6]) + (" …" if len(a.evidence) > 6 else "")
        actions = "<br>".join(html.escape(i) for i in a.action_items)
        lessons = ", ".join(f'<a href="{html.escape(x["url"])}">{html.escape(x["title"])}</a>' for x in a.lessons)
        rows.append(
            f'<tr class="{a.risk.lower()}"><td>{a.id}</td><td><b>{html.escape(a.title)}</b><br>'
            f"<small>{html.escape(a.guidance)}<br>{lessons}</small></td><td>{html.escape(a.answer)}</td>"
            f"<td>{a.risk}{' (accepted)' if a.accepted else ''}</td><td><small>{evidence}</small></td>"
            f"<td><small>{actions}</small></td></tr>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>ORR {html.escape(environment)}</title><style>"
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:4px;vertical-align:top}.high td{background:#fdd}"
        ".medium td{background:#fed}.none td{background:#efe}</style></head><body>"
        f"<h1>Operational Readiness Review — {html.escape(environment)}</h1>"
        f"<p>{html.escape(_summary(answers))}</p><table><tr><th>id</th><th>question</th><th>answer</th>"
        "<th>risk</th><th>evidence</th><th>action items</th></tr>" + "".join(rows) + "</table></body></html>\n"
    )


def _lens_id(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", value).lower()


def custom_lens(checklist: dict[str, Any]) -> dict[str, Any]:
    """The checklist as an AWS Well-Architected Tool custom lens (pillars → questions → choices → risk rules).

    Each question gets one choice per practice it checks ("meets the guidance") plus the tool's own
    "None of these"; choosing it is no risk, otherwise the question's risk (HIGH or MEDIUM).
    """
    pillars: dict[str, list[dict[str, Any]]] = {}
    for group in checklist["groups"]:
        for q in group["questions"]:
            qid = _lens_id(q["id"])
            choice = {
                "id": f"{qid}_meets",
                "title": q["title"][:128],
                "helpfulResource": {"displayText": q["guidance"][:1024], "url": q["lessons"][0]["url"]},
                "improvementPlan": {"displayText": q["guidance"][:1024]},
            }
            risk = "HIGH_RISK" if q["risk"] == "HIGH" else "MEDIUM_RISK"
            pillars.setdefault(q["pillar"], []).append(
                {
                    "id": qid,
                    "title": q["title"][:128],
                    "description": f"{group['title']}. {q['guidance']}"[:2048],
                    "helpfulResource": {"displayText": q["guidance"][:2048], "url": q["lessons"][0]["url"]},
                    "choices": [choice],
                    "riskRules": [
                        {"condition": choice["id"], "risk": "NO_RISK"},
                        {"condition": "default", "risk": risk},
                    ],
                }
            )
    return {
        "schemaVersion": LENS_SCHEMA_VERSION,
        "name": checklist["name"][:128],
        "description": " ".join(checklist["description"].split())[:2048],
        "pillars": [
            {"id": pillar, "name": _PILLAR_NAMES.get(pillar, pillar), "questions": questions}
            for pillar, questions in pillars.items()
        ],
    }
