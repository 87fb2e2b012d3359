"""One exception tree; each class knows its exit code.

    ImagegenError                 (1, unexpected)
    ├── UsageError                2  invalid usage or input, caught before any request
    ├── ConfigError               3  unknown provider, missing key, bad config file
    ├── ProviderError             (carries status, code, request id)
    │   ├── AuthError             4  401/403
    │   ├── RefusedError          5  other 4xx, content policy, quota, failed job
    │   └── UnavailableError      6  429/5xx/timeouts after retries, malformed answers
    │       └── ShortfallError    6  fewer images than asked for, even when asked again
    ├── OutputError               7  output could not be written
    │   └── DiskFullError         7  no space left: a batch starts no new call
    ├── PartialError              8  some images written, some failed
    │   └── OverBudget            8  a batch job not started: over --max-cost
    └── Interrupted             130  Ctrl-C (names any job left running); 143 on SIGTERM

The CLI converts these to messages and exit codes in exactly one place
(`imagegen_cli.cli.app.main`).
"""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    CONFIG = 3
    AUTH = 4
    REFUSED = 5
    UNAVAILABLE = 6
    OUTPUT = 7
    PARTIAL = 8
    INTERRUPTED = 130
    TERMINATED = 143  # SIGTERM (a CI cancel): 128 + 15, as shells report it


class ImagegenError(Exception):
    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ImagegenError):
    exit_code = ExitCode.USAGE


class ConfigError(ImagegenError):
    exit_code = ExitCode.CONFIG


class ProviderError(ImagegenError):
    """What a provider answered or failed with: its HTTP status, error code and request
    id are shown with the message. Raise one of the subclasses."""

    exit_code = ExitCode.UNAVAILABLE
    # The provider (by its config name) that answered so, once a fallback chain could
    # have sent the request to more than one: its key, not the first's, is the one refused.
    provider: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        extra = []
        if self.status:
            extra.append(f"HTTP {self.status}")
        if self.code:
            extra.append(f"code {self.code}")
        if self.request_id:
            extra.append(f"request id {self.request_id}")
        if extra:
            parts.append(f"({', '.join(extra)})")
        return " ".join(parts)


class AuthError(ProviderError):
    exit_code = ExitCode.AUTH


class RefusedError(ProviderError):
    exit_code = ExitCode.REFUSED


class UnavailableError(ProviderError):
    exit_code = ExitCode.UNAVAILABLE


class ShortfallError(UnavailableError):
    """The provider sent fewer images than asked for, even when asked again. With
    some images written the run ends as partial (8)."""


class OutputError(ImagegenError):
    exit_code = ExitCode.OUTPUT


class DiskFullError(OutputError):
    """No space left on the disk (ENOSPC, EDQUOT): every later write would fail too, so a
    batch starts no new call once one is raised (what is in flight still lands)."""


def output_error(message: str, exc: OSError) -> OutputError:
    """MESSAGE with EXC's reason, as a DiskFullError when the disk is full."""
    text = f"{message}: {exc.strerror or exc}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(text)
    return OutputError(text)


class PartialError(ImagegenError):
    exit_code = ExitCode.PARTIAL


class OverBudget(PartialError):
    """A batch job not started because it would take the batch over --max-cost."""


class Interrupted(ImagegenError):
    """Ctrl-C: the message says what was left running (job ids)."""

    exit_code = ExitCode.INTERRUPTED
