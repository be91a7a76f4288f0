"""Sphinx configuration of the API reference; ``make docs`` builds it into build/docs.

It documents ``actorgrpc.__all__``, from the docstrings as they are (plain
reST): autodoc only, no napoleon. It imports the installed package (``make``
installs it in .venv, editable), so this file touches no sys.path.
"""

from __future__ import annotations

import pkgutil
from typing import Any

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

import actorgrpc

project = "actorgrpc"
author = "the actorgrpc authors"
copyright = "2026, the actorgrpc authors"
release = actorgrpc.__version__

extensions = ["sphinx.ext.autodoc"]
exclude_patterns: list[str] = []
html_theme = "alabaster"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
# Address is a private alias (actorgrpc._typing): show what it stands for.
autodoc_type_aliases = {"Address": "tuple[str, int]"}

# `make docs` runs nitpicky (-n): every type named in a signature must resolve.
# Without intersphinx (no network here) these cannot, and need not:
nitpick_ignore_regex = [
    # External: the standard library's types.
    ("py:class", r"(collections\.abc|asyncio|asyncio\.events)\.\w+"),
    # External: grpc's and psutil's (actorgrpc.testing's signatures).
    ("py:class", r"(grpc|psutil)\.\w+"),
    # External: protobuf messages of the generated code (actorgrpc.v1), whose
    # reference is the .proto files, not this one.
    ("py:class", r"(actorgrpc\.v1\.)?\w+_pb2\.\w+"),
]
# Internal: types named in public signatures that are not in actorgrpc.__all__,
# so not documented here; shown as plain names. Any other unresolved name,
# in particular a new one, still fails the build.
_UNEXPORTED = [
    "F",  # the TypeVar of @command's overloads
    "T",  # the TypeVar of BlockingFuture
    "T_co",  # the TypeVar of ActorFuture
    "_T",  # the TypeVar of actorgrpc.testing.wait_for
    "Address",  # alias: a (host, port) tuple
    "BlockingFuture",  # what plain code's ActorFuture is (actorgrpc.core.futures)
    "Hook",  # alias: Callable[[Any], Any], an actor hook
    "Envelope",  # alias: the transport's envelope, opaque to the core
    "ReplyCallback",  # alias: Callable[[Envelope], None]
    "Monitor",  # Arbiter.add_monitor's result
    "TLSConfig",  # Arbiter's tls=
    "Transport",  # Actor's constructor: the process's IO loop, server and routing
    "SupervisorLink",  # Actor.attach: the actor's line to its supervisor
    "Runner",  # ActorProxyMonitor's constructor: what runs the actor
    "ArbiterBase",  # Arbiter's base: the arbiter's semantics (docs/architecture.md)
]
# Under whichever module defines them (`actorgrpc.supervision.pools.Monitor`),
# or bare when the annotation is a string.
nitpick_ignore_regex += [("py:class", rf"(actorgrpc(\.\w+)+\.)?{name}") for name in _UNEXPORTED]

logger = logging.getLogger(__name__)


def _attribute_comment(name: str) -> list[str] | None:
    """The ``#:`` comment above ``name``'s assignment in actorgrpc or a submodule."""
    modules = [actorgrpc.__name__]
    modules += [m.name for m in pkgutil.walk_packages(actorgrpc.__path__, "actorgrpc.")]
    for module in modules:
        try:
            docs = ModuleAnalyzer.for_module(module).find_attr_docs()
        except PycodeError:
            continue
        if ("", name) in docs:
            return list(docs[("", name)])
    return None


def _document_constants(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Document ``actorgrpc.X`` constants by the ``#:`` comment where they are set.

    autodoc reads such comments only in the module named by the directive
    (actorgrpc), not in the one that defines the constant (it is re-exported);
    it would show the docstring of the value's type (int's) instead.
    """
    if what != "data" or not name.startswith("actorgrpc."):
        return
    comment = _attribute_comment(name.rsplit(".", 1)[1])
    if comment is None:
        logger.warning("%s has no #: comment in actorgrpc", name)
        return
    lines[:] = comment


def _check_all_documented(app: Sphinx, env: BuildEnvironment) -> None:
    """Every name of actorgrpc.__all__ has an entry in the reference."""
    documented = set(env.get_domain("py").objects)
    for name in actorgrpc.__all__:
        if f"actorgrpc.{name}" not in documented:
            logger.warning("actorgrpc.%s (in actorgrpc.__all__) is not in docs/api", name)


def _public_alias(app: Sphinx, env: BuildEnvironment, node: Any, contnode: Any) -> Any:
    """Link ``actorgrpc.core.futures.ActorFuture`` (as annotations name it) to ``actorgrpc.X``."""
    target = node.get("reftarget", "")
    name = target.rsplit(".", 1)[-1]
    if not target.startswith("actorgrpc.") or name not in actorgrpc.__all__:
        return None
    domain = env.get_domain("py")
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], f"actorgrpc.{name}", node, contnode
    )


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("missing-reference", _public_alias)
    app.connect("autodoc-process-docstring", _document_constants)
    app.connect("env-check-consistency", _check_all_documented)
    return {"parallel_read_safe": True}
