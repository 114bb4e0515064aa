"""One family of exceptions, so the CLI can map every failure to a message and an exit code.

Each subclass also inherits the builtin it refines, so library callers that already
catch ``ValueError`` or ``OSError`` keep working.
"""

from __future__ import annotations


class NewsletterError(Exception):
    """Root of every error the tool reports to a user.

    ``exit_code`` lets the CLI stay a thin layer: it never needs to know which
    subclass it is looking at to choose the process status.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(NewsletterError, ValueError):
    """newsletter.yml is unreadable or invalid; carries every problem found at once."""

    exit_code = 2

    def __init__(self, problems: list[str], *, path: str | None = None) -> None:
        self.problems = list(problems)
        self.path = path
        header = f"{path}: invalid configuration" if path else "invalid configuration"
        if len(self.problems) == 1:
            text = f"{header}:\n  {self.problems[0]}"
        else:
            text = f"{header} ({len(self.problems)} problems):\n" + "\n".join(
                f"  {p}" for p in self.problems
            )
        super().__init__(text)


class ScaffoldError(NewsletterError):
    """`newsletter init` would overwrite something, or could not write its files."""

    exit_code = 2


class SourceError(NewsletterError):
    """A whole source could not be read (missing folder, unreachable or malformed feed)."""

    exit_code = 3


class ContentWarning(NewsletterError):
    """One item of a source was skipped; raised instead of warned under ``--strict``."""

    exit_code = 3


class TemplateError(NewsletterError):
    """A template is missing, does not parse, uses an undefined variable or yields bad MJML."""

    exit_code = 4


class ArchiveError(NewsletterError, OSError):
    """The issues/ folder cannot be read or written."""

    exit_code = 5


class NothingNewError(NewsletterError):
    """No content qualifies for a new issue: not a failure, but not a success either.

    Its own exit status lets a scheduler tell "nothing to send" from a broken build.
    """

    exit_code = 10


class CheckFailedError(NewsletterError):
    """The pre-send check found something the config says must stop a send."""

    exit_code = 12


class StoreError(NewsletterError):
    """The subscriber store or send ledger cannot be used as asked."""

    exit_code = 6


class ImportFileError(StoreError, ValueError):
    """A subscriber CSV cannot be imported at all (not a per-row problem)."""


class SendError(NewsletterError):
    """A send could not start or had to stop."""

    exit_code = 7


class SendInProgressError(SendError):
    """Another send of the same issue holds the lock."""

    exit_code = 8


class ProviderError(SendError):
    """The e-mail provider refused or failed a request; ``status`` and ``body`` say how."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.body = body


class TransientProviderError(ProviderError):
    """Certainly not delivered, and worth trying again later: a rate limit, a 5xx answer, a
    refused connection, a request that was not fully written."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class DeliveryUnknownError(ProviderError):
    """The request (or an SMTP message's final ".") went out and no answer came back: the
    provider may have taken it. Never retried without being asked, since that may send a
    second copy."""


class AuthenticationError(ProviderError, PermissionError):
    """Credentials missing or refused by the provider."""


class InvalidRecipient(NewsletterError, ValueError):
    """A recipient (address, name or merge value) that not every transport can carry."""

    exit_code = 2


class InvalidAddress(InvalidRecipient):
    """An e-mail address that cannot be used."""


class HeaderInjectionError(NewsletterError, ValueError):
    """A header value contains CR, LF or another control character."""


class TokenError(NewsletterError, ValueError):
    """An unsubscribe token is forged, truncated or malformed."""

    exit_code = 2


class ScheduleError(NewsletterError, ValueError):
    """The schedule cannot be evaluated."""

    exit_code = 2


class LockedError(NewsletterError):
    """Another run holds the lock."""

    exit_code = 8
