"""What one run of a task looked at, changed, failed and asked: the one stats type."""

from dataclasses import dataclass, field


@dataclass
class TaskStats:
    """Counts of one run (status check, autopay, retention, reconciliation)."""

    looked_at: int = 0
    changed: int = 0
    errors: int = 0
    requests: int = 0
    notes: list = field(default_factory=list)
