"""Turn a :class:`gameday.harness.RunResult` into numbers, expectations and a picture.

Writes ``report.json`` (everything, machine-readable; the tests read it), ``report.md`` (the table),
``timeline.png`` (success, fallback share, latency and instances in rotation over time, phases shaded)
and ``requests.csv`` (every request).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .harness import RunResult, Sample
from .load import RequestRecord


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def phase_metrics(requests: list[RequestRecord]) -> dict[str, Any]:
    """Requests, success share, 5xx, unanswered, fallback share, p50/p99 latency (ms), instances seen."""
    total = len(requests)
    ok = sum(1 for r in requests if 200 <= r.status < 400)
    latencies = [r.latency * 1000 for r in requests]
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    return {
        "requests": total,
        "success_share": round(ok / total, 4) if total else None,
        "status_5xx": sum(1 for r in requests if r.status >= 500),
        "unanswered": sum(1 for r in requests if r.status == 0),
        "fallback_share": round(sum(1 for r in requests if r.source == "fallback") / total, 4) if total else None,
        "p50_ms": None if p50 is None else round(p50, 1),
        "p99_ms": None if p99 is None else round(p99, 1),
        "instances": sorted({r.instance for r in requests if r.instance}),
    }


def _first(samples: list[Sample], since: float, predicate: Any) -> float | None:
    for s in samples:
        if s.t >= since and predicate(s):
            return s.t
    return None


@dataclass(frozen=True)
class Expectation:
    name: str
    expected: str
    measured: str
    ok: bool


def analyse(result: RunResult) -> dict[str, Any]:
    """Everything report.json holds."""
    s = result.settings
    bound = s.detection_bound_seconds
    phases = []
    for phase in result.phases:
        in_phase = [r for r in result.requests if phase["start"] <= r.t < phase["end"]]
        phases.append({**phase, "seconds": round(phase["end"] - phase["start"], 2), **phase_metrics(in_phase)})
    by_name = {p["name"]: p for p in phases}
    events = result.events

    def start_of(name: str) -> float | None:
        return by_name[name]["start"] if name in by_name else None

    timings: dict[str, float | None] = {}
    fault_at = start_of("single-server-fault")
    if fault_at is not None:
        out = _first(result.samples, fault_at, lambda x: not x.status.get("a", "UP").startswith("UP"))
        timings["mttd_s"] = None if out is None else round(out - fault_at, 2)
        launched = next((e["t"] for e in events if e["event"] == "instance_launched" and e["t"] >= fault_at), None)
        timings["time_to_replacement_s"] = None if launched is None else round(launched - fault_at, 2)
        back = None if launched is None else _first(result.samples, launched, lambda x: x.status.get("a") == "UP")
        timings["mttr_s"] = None if back is None else round(back - fault_at, 2)
    for name, key in (("dependency-off", "fail_open_flag_s"), ("dependency-blackholed", "fail_open_blackhole_s")):
        begin = start_of(name)
        if begin is not None:
            at = _first(result.samples, begin, lambda x: x.fail_open)
            timings[key] = None if at is None else round(at - begin, 2)

    expectations: list[Expectation] = []
    bad = [p for p in phases if p["status_5xx"] or p["unanswered"]]
    expectations.append(
        Expectation(
            "no 5xx in any phase",
            "0 responses >= 500 and 0 unanswered requests",
            "; ".join(f"{p['name']}: {p['status_5xx']} 5xx, {p['unanswered']} unanswered" for p in bad) or "none",
            not bad,
        )
    )
    for key, label in (
        ("mttd_s", "bad instance out of rotation"),
        ("fail_open_flag_s", "fail-open, flag off"),
        ("fail_open_blackhole_s", "fail-open, dependency black-holed"),
    ):
        if key in timings:
            value = timings[key]
            expectations.append(
                Expectation(
                    f"{label} within {s.unhealthy_threshold} x interval + timeout",
                    f"<= {bound:g} s",
                    "never" if value is None else f"{value:g} s",
                    value is not None and value <= bound,
                )
            )
    replaced = [e["instance"] for e in events if e["event"] == "instance_terminated"]
    fleet_wide_refusals = sum(1 for e in events if e["event"] == "healer_decision" and e["fleet_wide"])
    if fault_at is not None:
        expectations.append(
            Expectation(
                "healer replaced the faulted instance only",
                "exactly i-local-a-1 replaced; fleet-wide faults never recycled",
                f"replaced {replaced or 'nothing'}; {fleet_wide_refusals} fleet-wide refusal(s)",
                replaced == ["i-local-a-1"] and timings.get("mttr_s") is not None,
            )
        )
    missed = [e["phase"] for e in events if e["event"] == "goal_missed"]
    expectations.append(
        Expectation("every phase reached its goal", "no goal missed", ", ".join(missed) or "none", not missed)
    )
    return {
        "profile": result.profile.name,
        "rate_per_second": result.profile.rate,
        "wall_seconds": round(result.wall_seconds, 1),
        "settings": {
            "stack": s.stack_name,
            "path": s.path,
            "interval_seconds": s.interval_seconds,
            "timeout_seconds": s.timeout_seconds,
            "healthy_threshold": s.healthy_threshold,
            "unhealthy_threshold": s.unhealthy_threshold,
            "deregistration_delay_seconds": s.deregistration_delay_seconds,
            "detection_bound_seconds": bound,
            "healer_hold_seconds": result.healer_hold_seconds,
        },
        "phases": phases,
        "timings": timings,
        "expectations": [e.__dict__ for e in expectations],
        "passed": all(e.ok for e in expectations),
        "events": events,
    }


def _fmt(value: Any, pattern: str = "{:g}") -> str:
    return "–" if value is None else pattern.format(value)


def markdown(report: dict[str, Any]) -> str:
    s, t = report["settings"], report["timings"]
    lines = [
        f"# Game day report ({report['profile']} profile)",
        "",
        f"Health check from `{s['stack']}`: `GET {s['path']}` every {s['interval_seconds']} s, timeout "
        f"{s['timeout_seconds']} s, healthy {s['healthy_threshold']}, unhealthy {s['unhealthy_threshold']}, "
        f"deregistration delay {s['deregistration_delay_seconds']} s. Bound for detection and fail-open: "
        f"{s['detection_bound_seconds']:g} s. Load: {report['rate_per_second']:g} req/s. "
        f"Wall time: {report['wall_seconds']:g} s.",
        "",
        "| phase | s | requests | success | 5xx | unanswered | fallback | p50 ms | p99 ms | instances |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in report["phases"]:
        lines.append(
            f"| {p['name']} | {p['seconds']:.1f} | {p['requests']} | {_fmt(p['success_share'], '{:.1%}')} | "
            f"{p['status_5xx']} | {p['unanswered']} | {_fmt(p['fallback_share'], '{:.1%}')} | "
            f"{_fmt(p['p50_ms'])} | {_fmt(p['p99_ms'])} | {', '.join(p['instances'])} |"
        )
    lines += [
        "",
        "| timing | seconds |",
        "|---|---:|",
        f"| fault → bad instance out of rotation (MTTD) | {_fmt(t.get('mttd_s'))} |",
        f"| fault → replacement launched | {_fmt(t.get('time_to_replacement_s'))} |",
        f"| fault → replacement in rotation (MTTR) | {_fmt(t.get('mttr_s'))} |",
        f"| flag off → fail-open | {_fmt(t.get('fail_open_flag_s'))} |",
        f"| dependency black-holed → fail-open | {_fmt(t.get('fail_open_blackhole_s'))} |",
        "",
        "| expectation | expected | measured | |",
        "|---|---|---|---|",
    ]
    for e in report["expectations"]:
        lines.append(f"| {e['name']} | {e['expected']} | {e['measured']} | {'pass' if e['ok'] else '**FAIL**'} |")
    lines += ["", "![timeline](timeline.png)", ""]
    return "\n".join(lines)


def plot(result: RunResult, report: dict[str, Any], path: Path) -> None:
    """timeline.png: four panels over time, phases shaded and named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = max([p["end"] for p in report["phases"]] + [1.0])
    bins = int(math.ceil(end))
    counts = [0] * bins
    ok = [0] * bins
    fallback = [0] * bins
    lat: list[list[float]] = [[] for _ in range(bins)]
    for r in result.requests:
        i = min(bins - 1, max(0, int(r.t)))
        counts[i] += 1
        ok[i] += 200 <= r.status < 400
        fallback[i] += r.source == "fallback"
        lat[i].append(r.latency * 1000)
    xs = [i + 0.5 for i in range(bins)]
    success = [ok[i] / counts[i] * 100 if counts[i] else float("nan") for i in range(bins)]
    fb = [fallback[i] / counts[i] * 100 if counts[i] else float("nan") for i in range(bins)]
    p50 = [percentile(v, 0.5) or float("nan") for v in lat]
    p99 = [percentile(v, 0.99) or float("nan") for v in lat]

    fig, axes = plt.subplots(4, 1, figsize=(12, 9), sharex=True, constrained_layout=True)
    colours = ("#f2f2f2", "#fde2e2", "#e2f0e2", "#fde2e2", "#e2e8fd", "#fde2e2", "#e2f0e2")
    for ax in axes:
        for i, p in enumerate(report["phases"]):
            ax.axvspan(p["start"], p["end"], color=colours[i % len(colours)], zorder=0)
    for p in report["phases"]:
        axes[0].text((p["start"] + p["end"]) / 2, 103, p["name"], ha="center", va="bottom", fontsize=7)
    axes[0].plot(xs, success, color="tab:green", label="success %")
    axes[0].set_ylim(0, 115)
    axes[0].set_ylabel("success %")
    axes[1].plot(xs, fb, color="tab:orange")
    axes[1].set_ylim(-5, 105)
    axes[1].set_ylabel("fallback %")
    axes[2].plot(xs, p50, color="tab:blue", label="p50")
    axes[2].plot(xs, p99, color="tab:red", label="p99")
    axes[2].set_yscale("log")
    axes[2].set_ylabel("latency ms")
    axes[2].legend(loc="upper left", fontsize=8)
    ts = [smp.t for smp in result.samples]
    axes[3].step(ts, [smp.in_rotation for smp in result.samples], where="post", color="tab:purple", label="in rotation")
    axes[3].step(ts, [smp.healthy for smp in result.samples], where="post", color="black", ls="--", label="healthy")
    axes[3].set_ylim(-0.2, 3.5)
    axes[3].set_ylabel("instances")
    axes[3].set_xlabel("seconds")
    axes[3].legend(loc="lower left", fontsize=8)
    for e in report["events"]:
        if e["event"] in ("fault", "restore", "instance_launched"):
            for ax in axes:
                ax.axvline(e["t"], color="grey", lw=0.6, ls=":")
    fig.suptitle(f"Game day ({report['profile']}): what users saw", fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(result: RunResult, out_dir: Path) -> dict[str, Any]:
    """Write report.json, report.md, timeline.png and requests.csv into ``out_dir``; return the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = analyse(result)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(markdown(report), encoding="utf-8")
    plot(result, report, out_dir / "timeline.png")
    with open(out_dir / "requests.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["t", "status", "latency", "instance", "source", "error"])
        writer.writeheader()
        for r in result.requests:
            writer.writerow({**r.as_dict(), "t": round(r.t, 4), "latency": round(r.latency, 4)})
    return report
