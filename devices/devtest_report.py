"""Device-test results: one line per check, printed as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

Result = Literal["PASS", "WARN", "FAIL"]


@dataclass(frozen=True)
class CheckResult:
    """device, check, result, the measured value, and what the technician should do."""

    device: str
    check: str
    result: Result
    value: str = ""
    action: str = ""


def exit_code(results: Sequence[CheckResult]) -> int:
    return 1 if any(r.result == "FAIL" for r in results) else 0


def render_table(results: Sequence[CheckResult]) -> str:
    header = ("DEVICE", "CHECK", "RESULT", "MEASURED", "WHAT TO DO")
    rows = [header] + [(r.device, r.check, r.result, r.value, r.action) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row))
        for row in rows
    ]
    lines.insert(1, "-" * min(120, sum(widths) + 8 + len(header[4])))
    return "\n".join(line.rstrip() for line in lines)


def render_json(results: Sequence[CheckResult]) -> str:
    summary = {r: sum(1 for x in results if x.result == r) for r in ("PASS", "WARN", "FAIL")}
    return json.dumps(
        {
            "results": [asdict(r) for r in results],
            "summary": summary,
            "exit_code": exit_code(results),
        }
    )
