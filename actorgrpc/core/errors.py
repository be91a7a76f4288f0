"""The exceptions of actorgrpc, with the codes that say on the wire which one it was.

The wire form (``actorgrpc.v1.Error``) is made and read in the remote layer
(``actorgrpc.remote.envelopes``); here an error is described in plain values
(``describe``) and rebuilt from them (``rebuild``).
"""

from __future__ import annotations

import builtins
import traceback
from enum import IntEnum
from typing import ClassVar

__all__ = [
    "ActorError",
    "ActorNotAvailable",
    "ActorNotFound",
    "ActorTimeout",
    "BadRequest",
    "CommandError",
    "CommandNotFound",
    "ErrorCode",
    "PermissionDenied",
    "ResourceExhausted",
]


class ErrorCode(IntEnum):
    """What went wrong, as ``actorgrpc.v1.ErrorCode`` numbers it (a test keeps them equal)."""

    ERROR_CODE_UNSPECIFIED = 0
    ERROR_CODE_COMMAND_FAILED = 1
    ERROR_CODE_UNKNOWN_COMMAND = 2
    ERROR_CODE_NO_SUCH_ACTOR = 3
    ERROR_CODE_ACTOR_NOT_AVAILABLE = 4
    ERROR_CODE_TIMEOUT = 5
    ERROR_CODE_BAD_REQUEST = 6
    ERROR_CODE_RESOURCE_EXHAUSTED = 7
    ERROR_CODE_PERMISSION_DENIED = 8


_Code = ErrorCode


class ActorError(Exception):
    """Base class of every error actorgrpc raises."""

    code: ClassVar[int] = _Code.ERROR_CODE_COMMAND_FAILED


class CommandNotFound(ActorError):
    """The target actor has no command of that name."""

    code = _Code.ERROR_CODE_UNKNOWN_COMMAND


class ActorNotFound(ActorError):
    """No actor has that aid or name."""

    code = _Code.ERROR_CODE_NO_SUCH_ACTOR


class ActorNotAvailable(ActorError):
    """The actor died, or the connection to it broke, before it replied."""

    code = _Code.ERROR_CODE_ACTOR_NOT_AVAILABLE


class ActorTimeout(ActorError, TimeoutError):
    """No reply came in time."""

    code = _Code.ERROR_CODE_TIMEOUT


class BadRequest(ActorError, ValueError):
    """A request or value could not be encoded or read."""

    code = _Code.ERROR_CODE_BAD_REQUEST


class ResourceExhausted(ActorError):
    """A limit (message size, queue length) refused the request."""

    code = _Code.ERROR_CODE_RESOURCE_EXHAUSTED


class PermissionDenied(ActorError):
    """Policy refused the request (for instance a pickled value with pickle off)."""

    code = _Code.ERROR_CODE_PERMISSION_DENIED


class CommandError(ActorError):
    """The remote command raised.

    ``remote_type``, ``remote_message`` and ``remote_traceback`` describe the
    remote exception. When it was a built-in exception (``ValueError``,
    ``KeyError``, ...) the raised object is also an instance of that type, so
    ``except ValueError`` works across the wire.
    """

    def __init__(self, remote_type: str, remote_message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{remote_type}: {remote_message}")
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[object, ...]:
        return (remote_error, (self.remote_type, self.remote_message, self.remote_traceback))


_BY_CODE: dict[int, type[ActorError]] = {
    cls.code: cls
    for cls in (
        CommandNotFound,
        ActorNotFound,
        ActorNotAvailable,
        ActorTimeout,
        BadRequest,
        ResourceExhausted,
        PermissionDenied,
    )
}
_MIXED: dict[type[BaseException], type[CommandError]] = {}


def remote_error(type_name: str, message: str, tb: str = "") -> CommandError:
    """A CommandError for a remote exception; also an instance of its built-in type, if any."""
    base = getattr(builtins, type_name, None)
    cls: type[CommandError] = CommandError
    if isinstance(base, type) and issubclass(base, Exception) and base is not Exception:
        cls = _MIXED.get(base) or _MIXED.setdefault(
            base, type(f"CommandError[{type_name}]", (CommandError, base), {})
        )
    err = cls.__new__(cls)
    CommandError.__init__(err, type_name, message, tb)
    if tb:
        # Shown under the local traceback when the error is printed.
        err.add_note("Remote traceback:\n" + tb.rstrip())
    return err


def short(text: str, limit: int = 80) -> str:
    """``repr(text)``, cut to about ``limit`` characters for error messages."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"... ({len(text)} characters)"


# Errors travel in gRPC status details and trailers, whose size is limited.
_MAX_MESSAGE = 2000
_MAX_TRACEBACK = 8000


def _cut(text: str, limit: int, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    return "..." + text[-limit:] if keep_end else text[:limit] + "..."


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ in ("builtins", "__main__", "__mp_main__"):
        return cls.__qualname__
    if cls.__module__.startswith("actorgrpc."):
        return f"actorgrpc.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def describe(exc: BaseException) -> tuple[int, str, str, str]:
    """An exception as plain values for the wire: (code, type name, message, traceback).

    Cut to what gRPC status details and trailers carry; the remote traceback of
    a CommandError travels on, so that a forwarded error keeps its origin.
    It never fails: text UTF-8 cannot carry (a lone surrogate, as
    ``os.fsdecode`` makes of a non-UTF-8 file name) is escaped, and an
    exception whose ``__str__`` raises is described by its type.
    """
    if isinstance(exc, CommandError):
        type_name, message, tb = exc.remote_type, exc.remote_message, exc.remote_traceback
        code = exc.code
    else:
        code = exc.code if isinstance(exc, ActorError) else _Code.ERROR_CODE_COMMAND_FAILED
        type_name, message, tb = _type_name(exc), _text_of(exc), ""
        if code == _Code.ERROR_CODE_COMMAND_FAILED and exc.__traceback__ is not None:
            tb = "".join(traceback.format_exception(exc))
    return (
        code,
        _cut(_utf8(type_name), 200),
        _cut(_utf8(message), _MAX_MESSAGE),
        _cut(_utf8(tb), _MAX_TRACEBACK, keep_end=True),
    )


def _text_of(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as inner:
        return f"<unprintable {type(exc).__name__}: its __str__ raised {type(inner).__name__}>"


def _utf8(text: str) -> str:
    """``text``, with what UTF-8 cannot carry (lone surrogates) escaped as ``\\udcxx``."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def rebuild(code: int, type_name: str, message: str, tb: str) -> ActorError:
    """The exception a peer described with ``describe``."""
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(message)
    return remote_error(type_name, message, tb)
