"""Typed results of grading, saved as JSON beside each graded notebook."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder.records import CheckResult


@dataclass
class CellScore:
    """Score of one graded cell: ``score`` is None until an instructor grades it by hand."""

    grade_id: str
    kind: str  # "auto" or "manual"
    points: float
    score: float | None
    checks: list[CheckResult] = field(default_factory=list)
    error: str = ""  # exception raised in the cell, if any (type and message only)


@dataclass
class SubmissionResult:
    """Everything the grader decided about one submission."""

    student: str
    assignment: str
    status: str  # "graded", "problem" (graded, but flagged) or "failed" (could not be graded)
    cells: list[CellScore] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    submission_sha256: str = ""
    reference: str = ""  # which reference run the checks were compared with
    host: str = ""
    submitted_at: str = ""  # ISO time, UTC, of the submission (collect's timestamp.txt); "" if unknown

    @property
    def score(self) -> float:
        return sum(c.score or 0.0 for c in self.cells)

    @property
    def max_score(self) -> float:
        return sum(c.points for c in self.cells)

    @property
    def needs_manual_grading(self) -> bool:
        return any(c.score is None for c in self.cells)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(path)  # atomic: a crash never leaves half a result

    @classmethod
    def load(cls, path: Path) -> SubmissionResult:
        data = json.loads(path.read_text())
        cells = [
            CellScore(**{**c, "checks": [CheckResult(**k) for k in c.get("checks", [])]})
            for c in data.pop("cells", [])
        ]
        return cls(**data, cells=cells)


def graded_results(autograded: Path, assignment: str) -> list[SubmissionResult]:
    """Every student's saved result for ``assignment`` (what feedback and export report on).

    ``autograded`` is the course's ``autograded/`` folder; none found is an error, since
    there is nothing to report on before ``grade`` has run.
    """
    paths = sorted(autograded.glob(f"*/{assignment}/result.json"))
    if not paths:
        raise ValueError(f"no graded submissions of {assignment!r} under {autograded} (run grade first)")
    return [SubmissionResult.load(path) for path in paths]
