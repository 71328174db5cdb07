"""What `persist doctor` finds: typed findings, the repairs `--fix` may make, the report.

A finding says how bad (ok, warning, problem), one line why, and the exact command
that fixes it. Only derived files and file modes are ever repaired automatically
(`Repair`); journal data is never deleted or rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

REPORT_VERSION = 1


class Severity(IntEnum):
    """Ordered: the report's result is its worst finding."""

    OK = 0
    WARNING = 1
    PROBLEM = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class Area(StrEnum):
    JOURNAL = "journal"
    CACHES = "caches"
    CHECKPOINTS = "checkpoints"
    SEARCH = "search"
    SESSIONS = "sessions"
    PERMISSIONS = "permissions"
    DISK = "disk"
    SERVICE = "service"


class RepairKind(StrEnum):
    """What `--fix` may do: only to derived files and file modes."""

    QUARANTINE = "quarantine"  # move a derived file into recovery/doctor/<time>/
    REBUILD_LEDGER = "rebuild-ledger"  # retention/pruned.json from the journal and the trash
    REBUILD_CACHES = "rebuild-caches"  # line-index and digest caches of closed segments
    REBUILD_INDEX = "rebuild-index"  # quarantine the search index, build it again
    CATCH_UP_INDEX = "catch-up-index"  # index what the journal has that the index has not
    CHMOD = "chmod"  # 0600 files, 0700 folders
    DROP_RENDERINGS = "drop-renderings"  # wrong render cache entries moved aside
    REMOVE_LEFTOVERS = "remove-leftovers"  # work folders of killed restores (partial files)
    # renderings of segments no longer in segments/: deleted, never kept aside (they hold
    # the text of messages pruned or deleted)
    REMOVE_RENDERINGS = "remove-renderings"
    # restore bundles written before messages they hold were deleted: removed, never
    # kept aside (the last copy of those messages)
    REMOVE_BUNDLES = "remove-bundles"


@dataclass(frozen=True)
class Repair:
    kind: RepairKind
    paths: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Finding:
    area: Area
    check: str  # a stable name (`journal.torn-tail`), for scripts reading --json
    severity: Severity
    summary: str  # one line for a person
    fix: str | None = None  # the exact command that fixes it (None: nothing to do)
    repair: Repair | None = None  # what `--fix` does about it (None: not automatic)

    def to_json(self) -> dict[str, Any]:
        return {
            "area": self.area.value,
            "check": self.check,
            "severity": self.severity.label,
            "summary": self.summary,
            "fix": self.fix,
            "auto_fix": self.repair is not None,
        }


@dataclass(frozen=True)
class FixResult:
    finding: Finding
    ok: bool
    done: str  # what was done, or why it could not be

    def to_json(self) -> dict[str, Any]:
        return {"check": self.finding.check, "ok": self.ok, "done": self.done}


@dataclass
class Report:
    log_dir: Path
    findings: list[Finding] = field(default_factory=list)
    took: float = 0.0  # seconds
    fixed: list[FixResult] = field(default_factory=list)  # with --fix, before this report

    @property
    def result(self) -> Severity:
        return max((f.severity for f in self.findings), default=Severity.OK)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": REPORT_VERSION,
            "log_dir": str(self.log_dir),
            "result": self.result.label,
            "took_s": round(self.took, 3),
            "counts": {s.label: sum(f.severity is s for f in self.findings) for s in Severity},
            "findings": [f.to_json() for f in self.findings],
            "fixed": [f.to_json() for f in self.fixed],
        }
