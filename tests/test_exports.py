"""The public API: exactly the documented names, each with a docstring."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Sequence

import pytest

import actorgrpc

#: The documented public API (README, pulsar's actors API).
DOCUMENTED = {
    # constants
    "ACTOR_ACTION_TIMEOUT",
    "ACTOR_STATES",
    "MONITOR_TASK_PERIOD",
    # classes
    "Actor",
    "ActorFuture",
    "ActorProxy",
    "ActorProxyMonitor",
    "Arbiter",
    "Client",
    "Request",
    # errors
    "ActorError",
    "ActorNotAvailable",
    "ActorNotFound",
    "ActorTimeout",
    "BadRequest",
    "CommandError",
    "CommandNotFound",
    "PermissionDenied",
    "ResourceExhausted",
    # functions
    "arbiter",
    "command",
    "connect",
    "get_actor",
    "room",
    "send",
    "spawn",
    "timeout",
}


def test_all_is_exactly_the_documented_set():
    assert len(actorgrpc.__all__) == len(set(actorgrpc.__all__)), "duplicates in __all__"
    assert set(actorgrpc.__all__) == DOCUMENTED


def isort_key(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions (ruff's RUF022 order)."""
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def test_all_is_sorted():
    assert list(actorgrpc.__all__) == sorted(actorgrpc.__all__, key=isort_key)


def test_star_import_gives_the_public_names():
    namespace: dict = {}
    exec("from actorgrpc import *", namespace)
    assert set(namespace) - {"__builtins__"} == DOCUMENTED


def test_version():
    assert isinstance(actorgrpc.__version__, str)
    assert actorgrpc.__version__.count(".") >= 1


def own_doc(obj) -> str:
    """The object's own docstring (not one inherited from object or a base)."""
    if inspect.isclass(obj):
        return obj.__dict__.get("__doc__") or ""
    return inspect.getdoc(obj) or ""


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_public_name_has_a_docstring(name):
    obj = getattr(actorgrpc, name)
    if inspect.isclass(obj) or callable(obj):
        assert own_doc(obj).strip(), f"actorgrpc.{name} has no docstring"
    else:
        # A constant: documented by a ``#:`` comment above its assignment.
        module = importlib.import_module(find_defining_module(name))
        assert name in attribute_docs(module), f"actorgrpc.{name} has no #: doc comment"


def runtime_modules():
    """Every module of the package, its layers' subpackages included (not the generated code)."""
    for info in pkgutil.walk_packages(actorgrpc.__path__, "actorgrpc."):
        if info.name == "actorgrpc.v1" or info.name.startswith("actorgrpc.v1."):
            continue
        yield info


def find_defining_module(name: str) -> str:
    for info in runtime_modules():
        module = importlib.import_module(info.name)
        tree = ast.parse(inspect.getsource(module))
        for node in tree.body:
            if isinstance(node, ast.Assign):
                targets: Sequence[ast.expr | None] = node.targets
            else:
                targets = [getattr(node, "target", None)]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return info.name
    raise AssertionError(f"no module assigns {name}")


def attribute_docs(module) -> set[str]:
    """Names assigned right under a ``#:`` comment."""
    lines = inspect.getsource(module).splitlines()
    out: set[str] = set()
    for node in ast.parse("\n".join(lines)).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
            if above.startswith("#:"):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                out.update(t.id for t in targets if isinstance(t, ast.Name))
    return out


def public_members(cls):
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if inspect.isfunction(member) or isinstance(member, property):
            yield name, member


@pytest.mark.parametrize(
    "name", sorted(n for n in DOCUMENTED if inspect.isclass(getattr(actorgrpc, n)))
)
def test_public_methods_of_public_classes_have_docstrings(name):
    cls = getattr(actorgrpc, name)
    missing = [m for m, member in public_members(cls) if not (member.__doc__ or "").strip()]
    assert not missing, f"{name}: no docstring on {missing}"


def test_package_and_modules_have_docstrings_and_all():
    assert (actorgrpc.__doc__ or "").strip()
    for info in runtime_modules():
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        assert (module.__doc__ or "").strip(), f"{info.name} has no docstring"
        if info.name.rsplit(".", 1)[1].startswith("_"):
            continue
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{info.name} has no __all__"
        for export in exported:
            assert hasattr(module, export), f"{info.name}.__all__ names a missing {export}"


def test_public_names_come_from_their_modules():
    # The facade re-exports; it defines nothing of its own.
    for name in DOCUMENTED:
        obj = getattr(actorgrpc, name)
        module = getattr(obj, "__module__", None)
        if module is not None and (inspect.isclass(obj) or inspect.isfunction(obj)):
            assert module.startswith("actorgrpc.") and module != "actorgrpc", (name, module)


#: Import paths of actorgrpc 0.1 that users may have used, and what they must still give.
OLD_PATHS = {
    "actorgrpc.actor": ["Actor", "get_actor", "send", "spawn"],
    "actorgrpc.arbiter": ["Arbiter", "arbiter"],
    "actorgrpc.commands": ["Request", "command"],
    "actorgrpc.consts": ["ACTOR_ACTION_TIMEOUT", "ACTOR_STATES", "MONITOR_TASK_PERIOD"],
    "actorgrpc.errors": ["ActorError", "ActorNotFound", "CommandError", "ResourceExhausted"],
    "actorgrpc.proxy": ["ActorProxy", "ActorProxyMonitor"],
}


@pytest.mark.parametrize("path", sorted(OLD_PATHS))
def test_old_import_paths_still_give_the_public_objects(path):
    module = importlib.import_module(path)
    for name in OLD_PATHS[path]:
        assert getattr(module, name) is getattr(actorgrpc, name), f"{path}.{name}"


def test_importing_the_old_arbiter_module_keeps_the_function():
    importlib.import_module("actorgrpc.arbiter")
    assert callable(actorgrpc.arbiter) and not inspect.ismodule(actorgrpc.arbiter)
