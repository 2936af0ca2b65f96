"""The results file the guest's pytest writes and the host reads: one JSON record per line.

Lines are appended as tests start and finish, on a share the host sees at once,
so a guest that hangs or dies still leaves the outcomes of the tests it finished
and names the test it was running.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pytest


@dataclass(frozen=True)
class Verdict:
    """What the host reports for one kernel test: passed, failed, skipped or xfailed, and why."""

    outcome: str
    text: str = ""


def append_record(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def start_record(nodeid: str) -> dict[str, Any]:
    return {"event": "start", "nodeid": nodeid}


def report_record(report: pytest.TestReport) -> dict[str, Any]:
    """The parts of a TestReport the host needs, with the skip reason as plain text."""
    text = report.longreprtext
    if report.skipped and isinstance(report.longrepr, tuple):
        text = str(report.longrepr[2])
    return {"event": "report", "nodeid": report.nodeid, "when": report.when,
            "outcome": report.outcome, "text": text, "wasxfail": getattr(report, "wasxfail", None)}


def collect_error_record(report: pytest.CollectReport) -> dict[str, Any]:
    return {"event": "collecterror", "nodeid": report.nodeid, "text": report.longreprtext}


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete line; a line cut short by a killed guest is ignored."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _verdict_of(reports: Iterable[dict[str, Any]]) -> Verdict:
    """Combine a test's setup/call/teardown reports the way pytest's own summary does."""
    by_phase = {r["when"]: r for r in reports}
    for phase in ("setup", "call", "teardown"):
        report = by_phase.get(phase)
        if report is None:
            continue
        if report["outcome"] == "failed":
            prefix = "" if phase == "call" else f"error in {phase}:\n"
            return Verdict("failed", prefix + report["text"])
        if report["outcome"] == "skipped":
            if report["wasxfail"] is not None:
                return Verdict("xfailed", report["wasxfail"] or report["text"])
            return Verdict("skipped", report["text"])
    return Verdict("passed")


def verdicts(records: list[dict[str, Any]], wanted: Iterable[str], finished: bool,
             problem: str) -> dict[str, Verdict]:
    """A verdict for every wanted test: the guest's own, or why the guest gave none.

    `finished`: the guest's pytest exited (so a missing test is an error, e.g. it
    failed to collect in the guest); `problem` says what went wrong otherwise."""
    reports: dict[str, list[dict[str, Any]]] = {}
    started: set[str] = set()
    collect_errors = [r["text"] for r in records if r["event"] == "collecterror"]
    for record in records:
        if record["event"] == "start":
            started.add(record["nodeid"])
        elif record["event"] == "report":
            reports.setdefault(record["nodeid"], []).append(record)
    result = {}
    for nodeid in wanted:
        phases = {r["when"] for r in reports.get(nodeid, [])}
        if "teardown" in phases:
            result[nodeid] = _verdict_of(reports[nodeid])
        elif nodeid in started:
            result[nodeid] = Verdict("failed", f"the guest stopped while this test ran: {problem}")
        elif finished:
            errors = "\n".join(collect_errors)
            result[nodeid] = Verdict("failed", f"the guest's pytest did not run this test: {problem}\n{errors}")
        else:
            result[nodeid] = Verdict("skipped", f"the guest stopped before this test ran: {problem}")
    return result
