"""The exit codes of ``multicloud replicate`` and ``verify``, and the one mapping from an error to its code.

0 every object verified; 1 some objects failed or differ (each named); 2 bad input, refused before anything was
written; 3 the run could not finish (a service or network failure that retries did not cure): run it again.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any, TextIO

from airflow_multicloud.errors import MulticloudError, is_transient


class Outcome(IntEnum):
    VERIFIED = 0
    FAILED = 1
    BAD_INPUT = 2
    INCOMPLETE = 3

    @property
    def meaning(self) -> str:
        return _MEANING[self]


_MEANING = {
    Outcome.VERIFIED: "every object verified",
    Outcome.FAILED: "some objects failed (each is named on stderr)",
    Outcome.BAD_INPUT: "bad input: nothing was written",
    Outcome.INCOMPLETE: "the run could not finish (service or network failure): run it again to finish",
}

#: the end of ``--help`` (replicate and verify): what each exit code means
EPILOG = "exit codes (replicate, verify):\n" + "\n".join(f"  {o.value}  {o.meaning}" for o in Outcome)


class UsageError(MulticloudError, ValueError):
    """A flag or argument the command line parser refused."""


def outcome_of(exc: BaseException) -> Outcome:
    """Which exit code an error stands for."""
    from airflow_multicloud.replication.engine import IncompleteRunError, MirrorLimitError, ReplicationError

    if isinstance(exc, MirrorLimitError):
        return Outcome.BAD_INPUT  # refused before anything was written
    if isinstance(exc, IncompleteRunError):
        return Outcome.INCOMPLETE
    if isinstance(exc, ReplicationError):
        return Outcome.FAILED
    if is_transient(exc):
        return Outcome.INCOMPLETE
    if isinstance(exc, MulticloudError | ValueError):
        # the engine wraps what fails once writing began (IncompleteRunError): what reaches here wrote nothing
        return Outcome.BAD_INPUT
    return Outcome.INCOMPLETE


def print_outcome(
    outcome: Outcome, error: str | None, as_json: bool, out: TextIO, body: dict[str, Any] | None = None
) -> None:
    """The last thing a command prints: its exit code and what it means (with ``body``, the run's summary, as JSON)."""
    if as_json:
        doc = {**(body or {}), "exit_code": int(outcome), "outcome": outcome.name.lower(), "error": error}
        print(json.dumps(doc, indent=2, default=str), file=out)
    else:
        print(f"exit {int(outcome)}: {outcome.meaning}", file=out)
