"""The ``actorgrpc`` command line: run an arbiter, inspect a tree, talk to its actors.

::

    actorgrpc run [module:function] [--host H] [--port P]
    actorgrpc ps ADDRESS
    actorgrpc info ADDRESS [TARGET]
    actorgrpc send ADDRESS TARGET ACTION [JSON ...] [--kw KEY=JSON ...]
    actorgrpc ping ADDRESS [TARGET]

Everything but ``run`` is an outside client of the tree. ``ping`` and ``ps``
go through ``actorgrpc.connect()``. ``send`` and ``info`` print values as the
wire carries them, a pickled value as its type name, which a Client (it
unpickles or refuses) cannot give: they call Mailbox.Send and Supervisor.Info
on a plain synchronous gRPC channel, as any other language would. Values are
decoded with pickle off and printed as JSON (bytes as base64 text, actor
references as ``{aid, name, address}``, tuples as lists, a pickled value as
``{"$pickled": type name}``, NaN and infinities as strings, as in proto3's
JSON).

Exit codes: 0 success, 1 the tree answered with an error or could not be
reached, 2 bad usage (including a malformed address or an argument that is
not JSON). Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import inspect
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import grpc

from actorgrpc.core.consts import ACTOR_STATES
from actorgrpc.core.errors import (
    ActorError,
    ActorNotFound,
    ActorTimeout,
    CommandError,
    CommandNotFound,
    describe,
)
from actorgrpc.core.proxy import ActorProxy, format_address, parse_address
from actorgrpc.hosting.client import Client, client_tls, connect, summary_dict, unavailable_error
from actorgrpc.remote import wire
from actorgrpc.remote.envelopes import error_from_pb
from actorgrpc.remote.security import SECRET_ENV, TLSConfig, auth_metadata
from actorgrpc.remote.status import ERROR_METADATA_KEY, STATUS_BY_CODE
from actorgrpc.v1 import (
    mailbox_pb2,
    mailbox_pb2_grpc,
    supervisor_pb2,
    supervisor_pb2_grpc,
    value_pb2,
)

if TYPE_CHECKING:
    from actorgrpc.core.futures import ActorFuture
    from actorgrpc.hosting.arbiter import Arbiter

__all__ = ["CliError", "main"]

PROG = "actorgrpc"
#: Default seconds to wait for an answer.
DEFAULT_TIMEOUT = 10.0


class CliError(Exception):
    """A failure reported as one line on stderr, with an exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- values -------------------------------------------------------------------


def _without_pickles(value: value_pb2.Value) -> value_pb2.Value:
    """A copy of ``value`` where each pickled value is a map naming its type."""
    out = value_pb2.Value()
    out.CopyFrom(value)
    _replace_pickles(out)
    return out


def _replace_pickles(value: value_pb2.Value) -> None:
    kind = value.WhichOneof("kind")
    if kind == "pickled_value":
        type_name = value.pickled_value.type_name or "object"
        value.map_value.fields["$pickled"].string_value = type_name
    elif kind == "list_value":
        for item in value.list_value.items:
            _replace_pickles(item)
    elif kind == "map_value":
        for item in value.map_value.fields.values():
            _replace_pickles(item)


def decode_value(value: value_pb2.Value) -> Any:
    """Decode a Value with pickle off (pickled values show as their type name)."""
    return wire.decode(_without_pickles(value), allow_pickle=False)


def jsonable(obj: Any) -> Any:
    """A decoded value in a form ``json.dumps`` takes."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode("ascii")
    if isinstance(obj, ActorProxy):
        return {"aid": obj.aid, "name": obj.name or "", "address": format_address(obj.address)}
    if isinstance(obj, list | tuple):
        return [jsonable(item) for item in obj]
    if isinstance(obj, dict):
        return {str(key): jsonable(item) for key, item in obj.items()}
    return repr(obj)


def dump_json(obj: Any) -> str:
    """Pretty JSON for stdout."""
    return json.dumps(jsonable(obj), indent=2, ensure_ascii=False, sort_keys=True)


def parse_json_arg(text: str, what: str) -> Any:
    """Read one command-line argument as JSON; CliError (exit 2) when it is not."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(
            f"{what} is not valid JSON: {text!r} ({exc}); quote strings, e.g. '\"text\"'", 2
        ) from None


def parse_kwarg(text: str) -> tuple[str, Any]:
    """``KEY=JSON`` -> (key, value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise CliError(f"--kw takes KEY=JSON, not {text!r}", 2)
    return key, parse_json_arg(raw, f"--kw {key}")


# -- talking to a tree ------------------------------------------------------------


def parse_address_arg(text: str) -> str:
    """Check a ``host:port`` argument; the channel target for it."""
    try:
        host, port = parse_address(text)
    except ValueError as exc:
        raise CliError(f"bad ADDRESS: {exc} (expected host:port, e.g. 127.0.0.1:8060)", 2) from None
    if not 0 < port < 65536:
        raise CliError(f"bad ADDRESS {text!r}: port {port} is out of range 1-65535", 2)
    return format_address((host, port))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _remote_error(err: grpc.RpcError) -> mailbox_pb2.Error | None:
    """The actorgrpc Error a failed Mailbox.Send carries in its trailing metadata."""
    trailing: Sequence[tuple[str, str | bytes]] = (
        err.trailing_metadata() if isinstance(err, grpc.Call) else ()
    ) or ()
    for key, value in trailing:
        if key == ERROR_METADATA_KEY and isinstance(value, bytes):
            error = mailbox_pb2.Error()
            try:
                error.ParseFromString(value)
            except Exception:
                return None
            return error
    return None


def explain(exc: ActorError, target: str, action: str) -> CliError:
    """Explain in one line the error a tree answered ``action`` on ``target`` with."""
    doing = f"{action} on {target!r}" if target else action
    if isinstance(exc, ActorNotFound):
        return CliError(f"NOT_FOUND: {_one_line(str(exc))}")
    if isinstance(exc, CommandNotFound):
        return CliError(
            f"UNIMPLEMENTED: actor {target!r} has no command {action!r} ({_one_line(str(exc))})"
        )
    if isinstance(exc, CommandError):
        return CliError(
            f"command {action!r} failed on {target!r}: "
            f"{exc.remote_type}: {_one_line(exc.remote_message)}"
        )
    code, type_name, message, _tb = describe(exc)
    status = STATUS_BY_CODE.get(code, grpc.StatusCode.UNKNOWN)
    return CliError(f"{status.name}: {doing} failed: {type_name}: {_one_line(message)}")


def rpc_error(
    err: grpc.RpcError,
    address: str,
    timeout: float,
    target: str,
    action: str,
    tls: TLSConfig | None = None,
) -> CliError:
    """Explain a failed call in one line."""
    code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = _one_line((err.details() if isinstance(err, grpc.Call) else "") or "")
    doing = f"{action} on {target!r}" if target else action
    remote = _remote_error(err)
    if remote is not None:
        return explain(error_from_pb(remote), target, action)
    if code == grpc.StatusCode.UNAVAILABLE:
        return CliError(str(unavailable_error(address, details, tls)))
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CliError(f"{doing}: no answer from {address} within {timeout:g}s")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return CliError(f"{address} does not serve {action} ({details or code.name})")
    return CliError(f"{code.name}: {doing} failed: {details}")


def _wait(fut: ActorFuture[Any], args: argparse.Namespace, target: str, action: str) -> Any:
    """The result of a Client's future, or the CliError that explains why none came.

    ``target`` is the actor asked to do ``action``; '' when no actor was (a
    Supervisor call), whose errors the client words itself.
    """
    try:
        return fut.result(args.timeout)
    except ActorTimeout as exc:
        if fut.done():  # the tree answered with a timeout of its own
            raise explain(exc, target, action) from None
        doing = f"{action} on {target!r}" if target else action
        raise CliError(f"{doing}: no answer from {args.address} within {args.timeout:g}s") from None
    except ActorError as exc:
        if not target:
            raise CliError(_one_line(str(exc))) from None
        raise explain(exc, target, action) from None


class _Channel:
    """A plain synchronous channel to one node, for the calls that print values as they are."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.address = parse_address_arg(args.address)
        self.timeout: float = args.timeout
        self.tls = _client_tls(args)
        self._metadata = auth_metadata(_secret(args))
        if self.tls is not None:
            self._channel = grpc.secure_channel(self.address, self.tls.channel_credentials())
        else:
            self._channel = grpc.insecure_channel(self.address)

    def __enter__(self) -> _Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self._channel.close()

    def _failed(self, err: grpc.RpcError, target: str, action: str) -> CliError:
        return rpc_error(err, self.address, self.timeout, target, action, self.tls)

    def send(
        self,
        target: str,
        action: str,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """Mailbox.Send: perform ``action`` on ``target``; the decoded result."""
        envelope = mailbox_pb2.Envelope(
            id=1, kind=mailbox_pb2.ENVELOPE_KIND_REQUEST, target=target, action=action
        )
        try:
            envelope.args.extend(wire.encode(a, allow_pickle=False) for a in args)
            wire.encode_kwargs(kwargs or {}, envelope.kwargs, allow_pickle=False)
        except ActorError as exc:
            raise CliError(f"cannot send the arguments: {exc}", 2) from None
        doing = f"{action!r} on {target!r}"
        try:
            reply = mailbox_pb2_grpc.MailboxStub(self._channel).Send(
                envelope, timeout=self.timeout, wait_for_ready=False, metadata=self._metadata
            )
        except grpc.RpcError as err:
            raise self._failed(err, target, action) from None
        if reply.HasField("error"):  # a peer that answers OK with an error set
            e = reply.error
            raise CliError(f"{doing} failed: {e.type}: {_one_line(e.message)}")
        try:
            return decode_value(reply.result)
        except ActorError as exc:
            raise CliError(f"{doing}: cannot read the reply: {exc}") from None

    def tree(self) -> supervisor_pb2.InfoResponse:
        """Supervisor.Info: the whole tree."""
        try:
            return supervisor_pb2_grpc.SupervisorStub(self._channel).Info(
                supervisor_pb2.InfoRequest(),
                timeout=self.timeout,
                wait_for_ready=False,
                metadata=self._metadata,
            )
        except grpc.RpcError as err:
            raise self._failed(err, "", "Supervisor.Info") from None


# -- subcommands ----------------------------------------------------------------


def format_uptime(seconds: float) -> str:
    """``3725.2`` -> ``'1h02m05s'``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h{minutes:02d}m"
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s"


def format_memory(rss: int) -> str:
    """Bytes in binary units; ``-`` when unknown."""
    if rss <= 0:
        return "-"
    size = float(rss)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - unreachable


PS_COLUMNS = (
    "AID",
    "NAME",
    "KIND",
    "LANGUAGE",
    "PID",
    "STATE",
    "ADDRESS",
    "UPTIME",
    "MEMORY",
    "COMMANDS",
)
_RIGHT = {"PID", "UPTIME", "MEMORY", "COMMANDS"}


def ps_table(actors: Sequence[dict[str, Any]]) -> str:
    """The tree (``Client.actors()``) as an aligned text table, one actor a line."""
    rows = [PS_COLUMNS]
    for a in actors:
        state = a["info_state"] or ACTOR_STATES.DESCRIPTION.get(a["state"], str(a["state"]))
        rows.append(
            (
                a["aid"],
                a["name"] or "-",
                a["kind"] or "-",
                a["language"] or "-",
                str(a["pid"]) if a["pid"] else "-",
                state,
                a["address"] or "-",
                format_uptime(a["uptime"]),
                format_memory(a["memory_rss"]),
                str(a["commands_handled"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(PS_COLUMNS))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(w) if col in _RIGHT else cell.ljust(w)
            for cell, w, col in zip(row, widths, PS_COLUMNS, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def cmd_ps(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        actors = _wait(client.actors(), args, "", "Supervisor.Info")
    print(ps_table(actors))
    return 0


#: Keys of ``summary_dict`` that ``info`` does not print: the proxy says again
#: what aid, name and address say; nodes come with the cluster layer.
_NOT_PRINTED = ("proxy", "node")


def cmd_info(args: argparse.Namespace) -> int:
    with _Channel(args) as channel:
        if args.target is None:
            tree = channel.tree()
            summaries = [summary_dict(s, decode_value) for s in tree.actors]
            out: Any = {
                "actors": [
                    {k: v for k, v in s.items() if k not in _NOT_PRINTED} for s in summaries
                ],
                "terminated": decode_value(tree.terminated) if tree.HasField("terminated") else {},
            }
        else:
            out = channel.send(args.target, "info")
    print(dump_json(out))
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    values = [parse_json_arg(a, f"argument {i}") for i, a in enumerate(args.args, 1)]
    kwargs = dict(parse_kwarg(kw) for kw in args.kw)
    with _Channel(args) as channel:
        result = channel.send(args.target, args.action, values, kwargs)
    print(dump_json(result))
    return 0


def cmd_ping(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        result = _wait(client.send(args.target, "ping"), args, args.target, "ping")
    if result != "pong":
        raise CliError(f"{args.target!r} answered {result!r} to ping, not 'pong'")
    print(result)
    return 0


def load_hook(spec: str) -> Callable[..., Any]:
    """Import ``module:function`` (the current directory is importable)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"the start hook must be module:function, not {spec!r}", 2)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"cannot import {module_name!r}: {exc}", 2) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(f"{module_name!r} has no attribute {attr!r}", 2) from None
    if not callable(obj):
        raise CliError(f"{spec} is not callable: it is a {type(obj).__name__}", 2)
    return obj


def _sigterm_as_interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def cmd_run(args: argparse.Namespace) -> int:
    from actorgrpc.hosting.arbiter import arbiter

    hook = load_hook(args.hook) if args.hook else None

    def announce(arb: Arbiter) -> None:
        host, port = arb.address
        print(f"arbiter {arb.aid} listening on {host}:{port}", flush=True)
        if arb.secret and arb.secret != args.secret:
            # A secret made here: tools need it to talk to the tree.
            print(f"export {SECRET_ENV}={arb.secret}", flush=True)

    async def start(arb: Arbiter) -> None:
        if hook is not None:
            result = hook(arb)
            if inspect.isawaitable(result):
                await result
        # Runs once the start hook has returned and the arbiter is running.
        import asyncio

        asyncio.get_running_loop().call_soon(announce, arb)

    # Until the arbiter's loop handles SIGTERM itself, treat it as Ctrl-C.
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        arb = arbiter(
            host=args.host,
            port=args.port,
            start=start,
            secret=args.secret,
            tls=_tls_from(args, args.mutual),
            insecure=args.insecure,
        )
    except (TypeError, ValueError) as exc:
        raise CliError(str(exc), 2) from None
    if arb is None:  # pragma: no cover - only inside an actor's process
        raise CliError("cannot run an arbiter inside an actor's process")
    try:
        arb.start()
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        raise CliError(
            f"the arbiter stopped on an error: {type(exc).__name__}: {_one_line(str(exc))}"
        ) from None
    return arb.exit_code or 0


# -- the parser -------------------------------------------------------------------


def _add_security_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--secret",
        default=os.environ.get(SECRET_ENV) or None,
        metavar="SECRET",
        help=f"the tree's secret (default: ${SECRET_ENV}; `run` makes one if unset)",
    )
    p.add_argument("--cacert", metavar="PEM", help="CA certificate: use TLS, trusting it")
    p.add_argument("--cert", metavar="PEM", help="this side's TLS certificate")
    p.add_argument("--key", metavar="PEM", help="this side's TLS private key")


def _tls_from(args: argparse.Namespace, mutual: bool = False) -> TLSConfig | None:
    if not (args.cert or args.key):
        return None
    try:
        return TLSConfig.load(
            {"cert": args.cert, "key": args.key, "ca": args.cacert, "mutual": mutual}
        )
    except (TypeError, ValueError) as exc:
        raise CliError(str(exc), 2) from None


def _secret(args: argparse.Namespace) -> str:
    """The tree's secret the options (or the environment) give; every tree has one."""
    if not args.secret:
        raise CliError(
            f"no secret: pass --secret or set ${SECRET_ENV} (`actorgrpc run` prints it)", 2
        )
    return str(args.secret)


def _client_tls(args: argparse.Namespace) -> TLSConfig | None:
    """The TLS the common options describe: --cacert alone, or with --cert and --key."""
    if not (args.cacert or args.cert or args.key):
        return None
    given = {"ca": args.cacert, "cert": args.cert, "key": args.key}
    try:
        return client_tls({k: v for k, v in given.items() if v})
    except (TypeError, ValueError) as exc:
        raise CliError(str(exc), 2) from None


def _connect(args: argparse.Namespace) -> Client:
    """The open client of the tree the common options describe (pickle off)."""
    address = parse_address_arg(args.address)
    try:
        client = connect(
            address,
            secret=_secret(args),
            tls=_client_tls(args),
            pickle=False,
            timeout=args.timeout,
        )
    except (TypeError, ValueError) as exc:
        raise CliError(str(exc), 2) from None
    try:
        return client.open()
    except ActorError as exc:
        raise CliError(_one_line(str(exc))) from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``actorgrpc``."""
    from actorgrpc import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run an actorgrpc arbiter, inspect its actor tree and talk to its actors.",
        epilog="ADDRESS is host:port of an actorgrpc node (the arbiter's for ps and info).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    client = argparse.ArgumentParser(add_help=False)
    client.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds to wait for an answer (default {DEFAULT_TIMEOUT:g})",
    )
    _add_security_options(client)

    p = sub.add_parser(
        "run",
        help="start an arbiter in the foreground",
        description="Start an arbiter in the foreground and print 'arbiter AID listening on "
        "HOST:PORT' once it serves. Ctrl-C or SIGTERM stop it and every actor it spawned.",
    )
    p.add_argument(
        "hook",
        nargs="?",
        metavar="module:function",
        help="start hook, called with the arbiter (may be async)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    _add_security_options(p)
    p.add_argument(
        "--mutual",
        action="store_true",
        help="require client certificates signed by --cacert (mutual TLS)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback --host without TLS (the secret travels in clear)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "ps",
        parents=[client],
        help="list the actor tree",
        description="List the actors of the tree served at ADDRESS (Supervisor.Info) as a table.",
    )
    p.add_argument("address", metavar="ADDRESS", help="the arbiter's host:port")
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser(
        "info",
        parents=[client],
        help="print info as JSON",
        description="Without TARGET: the whole tree (every actor's summary and info). With "
        "TARGET (an aid or name): the result of that actor's info command.",
    )
    p.add_argument("address", metavar="ADDRESS", help="the arbiter's host:port")
    p.add_argument("target", nargs="?", metavar="TARGET", help="an actor's aid or name")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "send",
        parents=[client],
        help="send a command and print the reply as JSON",
        description="Send ACTION to TARGET (an aid or name; 'arbiter' is the arbiter) through "
        "Mailbox.Send and print the reply as JSON. Each positional argument and each --kw value "
        "is JSON: 3, 2.5, '\"text\"', '[1, 2]', '{\"a\": null}', true.",
    )
    p.add_argument("address", metavar="ADDRESS", help="host:port of a node of the tree")
    p.add_argument("target", metavar="TARGET", help="the actor's aid or name")
    p.add_argument("action", metavar="ACTION", help="the command (ping, echo, info, ...)")
    p.add_argument("args", nargs="*", metavar="JSON", help="positional arguments, as JSON")
    p.add_argument(
        "--kw",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="a keyword argument (repeatable)",
    )
    p.set_defaults(func=cmd_send)

    p = sub.add_parser(
        "ping",
        parents=[client],
        help="ping an actor",
        description="Send ping to TARGET (default: the arbiter) and print pong.",
    )
    p.add_argument("address", metavar="ADDRESS", help="host:port of a node of the tree")
    p.add_argument(
        "target",
        nargs="?",
        default="arbiter",
        metavar="TARGET",
        help="the actor's aid or name (default: arbiter)",
    )
    p.set_defaults(func=cmd_ping)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    # `actorgrpc` alone (or with --host/--port) keeps meaning "run an arbiter".
    if not args_list or args_list[0].split("=")[0] in ("--host", "--port"):
        args_list.insert(0, "run")
    parser = build_parser()
    args = parser.parse_args(args_list)
    try:
        code: int = args.func(args)
    except CliError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (`actorgrpc info ... | head`): not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code
