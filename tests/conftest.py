"""Fixtures shared by the suite: a live arbiter per test, and a leak check."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import psutil
import pytest

from actorgrpc import Arbiter, arbiter

# Every arbiter of the run, and every tool a test starts (CLI, Node, grpcurl
# through auth_args()), shares this secret.
TEST_SECRET = os.environ.setdefault("ACTORGRPC_SECRET", "actorgrpc-test-secret-0123456789")


def auth_metadata() -> tuple[tuple[str, str], ...]:
    """The metadata raw gRPC calls of the tests carry."""
    return (("authorization", f"Bearer {os.environ['ACTORGRPC_SECRET']}"),)


def auth_args() -> list[str]:
    """grpcurl's arguments for the secret."""
    return ["-H", f"authorization: Bearer {os.environ['ACTORGRPC_SECRET']}"]


class _Auth(
    grpc.UnaryUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
):
    """Adds the secret to every call of a plain grpc channel."""

    def _with_auth(self, details: Any) -> Any:
        metadata = list(details.metadata or ()) + list(auth_metadata())
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._with_auth(details), request)

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._with_auth(details), request)

    def intercept_stream_unary(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return continuation(self._with_auth(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return continuation(self._with_auth(details), requests)


def authed_channel(target: str) -> grpc.Channel:
    """A plain grpc channel to ``target`` whose calls carry the test secret."""
    return grpc.intercept_channel(grpc.insecure_channel(target), _Auth())


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def actor_processes() -> list[psutil.Process]:
    """Processes of this test run that are actors (not multiprocessing's helpers)."""
    me = psutil.Process(os.getpid())
    out = []
    for child in me.children(recursive=True):
        try:
            if child.ppid() == me.pid:
                cmdline = " ".join(child.cmdline())
                if "forkserver" in cmdline or "resource_tracker" in cmdline:
                    continue
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.fixture
def arb() -> Iterator[Arbiter]:
    """A running arbiter on a free loopback port, stopped after the test."""
    a = arbiter()
    assert a is not None
    with a:
        yield a


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """Every test must leave no actor process running."""
    yield
    try:
        wait_until(lambda: not actor_processes(), timeout=15, what="actor processes to exit")
    except AssertionError:
        left = [(p.pid, " ".join(p.cmdline())[:80]) for p in actor_processes()]
        for p in actor_processes():
            p.kill()
        raise AssertionError(f"processes left behind: {left}") from None


# tests/helpers.py holds shared fixtures and probes: let pytest rewrite its asserts too.
pytest.register_assert_rewrite("helpers")


@pytest.hookimpl(trylast=True)  # after pytest's own, which tears down fixtures
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop multiprocessing's forkserver and resource tracker before pytest exits.

    They would stop on their own once this process is gone, but a second or
    so later: whoever checks for processes right after the run would see them.
    Not while an actor process still runs (an interrupted run): the
    forkserver's stop waits for every process it forked.
    """
    from multiprocessing import forkserver, resource_tracker

    if actor_processes():
        return

    for helper in (forkserver._forkserver, resource_tracker._resource_tracker):
        stop = getattr(helper, "_stop", None)  # CPython's own hook for its tests
        if stop is not None:
            stop()
