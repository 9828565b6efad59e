"""The one error tree. The HTTP edge maps each class to a status code."""

from __future__ import annotations


class KeelError(Exception):
    """Base of every error Keel raises on purpose."""

    status_code = 500
    headers: dict[str, str] = {}

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequest(KeelError):
    """A request that is well-formed but not acceptable (400)."""

    status_code = 400


class Unauthorized(KeelError):
    status_code = 401


class Forbidden(KeelError):
    status_code = 403


class TooManyRequests(KeelError):
    """A quota refused the request (429, with `Retry-After` in seconds)."""

    status_code = 429

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(max(1, int(retry_after + 0.999)))}


class PayloadTooLarge(KeelError):
    status_code = 413


class NotFound(KeelError):
    status_code = 404


class Gone(KeelError):
    """It existed, and retention has removed it (a finished run's event log)."""

    status_code = 410


class Conflict(KeelError):
    status_code = 409


class WorkspaceNotPublished(Conflict):
    """A sandbox operation changed the workspace on this host, but the change was not published
    for other hosts (over `sandbox.sync_max_bytes`, or another host published first). `result`:
    the command's own result (`Sandbox.run`), kept."""

    def __init__(self, detail: str, result: object = None) -> None:
        super().__init__(detail)
        self.result = result


class InvalidInput(KeelError):
    """Schema validation failures, invalid ids, fields Keel cannot honour (422)."""

    status_code = 422


class Unavailable(KeelError):
    status_code = 503


class ConfigError(KeelError):
    """A configuration file or setting Keel cannot use."""


class SandboxUnavailable(ConfigError):
    """The sandbox is configured but bubblewrap cannot run here (missing, no user namespaces,
    not Linux): Keel refuses rather than run code unsandboxed."""


class GraphLoadError(ConfigError):
    """A graph spec that cannot be imported or is not a graph."""


class UpstreamError(KeelError):
    """A service Keel called on the request's behalf (an embedding endpoint) failed (502)."""

    status_code = 502
