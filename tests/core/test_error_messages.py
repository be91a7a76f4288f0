"""Errors a user can act on: a misspelt spawn keyword or command says what was meant.

spawn's keywords other than its own become the actor's params, so a typo of
a hook (``perodic_task=tick``) would pass as a param and the hook never run:
one close to a keyword, with a value that keyword takes, is refused instead.
An unknown command names the closest known one, wherever it was sent.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import KINDS, SPAWN_T, T, params_of

from actorgrpc import Actor, CommandNotFound, send, spawn


def em_tick(actor: Any) -> None:
    """A hook."""


@pytest.mark.parametrize(
    ("typo", "value", "meant"),
    [
        ("perodic_task", em_tick, "periodic_task"),
        ("strat", em_tick, "start"),
        ("stoping", em_tick, "stopping"),
        ("concurency", "thread", "concurrency"),
        ("timout", 5, "timeout"),
        ("actor_clas", Actor, "actor_class"),
    ],
)
def test_a_spawn_keyword_one_typo_away_is_refused_with_the_keyword_meant(arb, typo, value, meant):
    with pytest.raises(TypeError) as err:
        spawn(concurrency="thread", **{typo: value})
    assert str(err.value) == f"spawn: unknown keyword {typo!r}: did you mean {meant!r}?"
    assert not arb.managed_actors  # nothing was spawned
    # So are a monitor's worker parameters, where they are given.
    with pytest.raises(TypeError, match=f"did you mean {meant!r}"):
        arb.add_monitor("em-pool", num_workers=0, **{typo: value})


def test_only_a_near_miss_with_a_value_its_keyword_takes_is_refused(arb):
    with pytest.raises(TypeError, match="did you mean 'periodic_task'"):
        spawn(concurrency="thread", perodic_task=em_tick)
    # Near a keyword, but with values it would not take: ordinary params.
    near = {"state": "idle", "started": 1.5, "perodic_task": 3, "concurrent": True}
    p = spawn(concurrency="thread", **near).result(SPAWN_T)
    assert send(p, "run", params_of).result(T) == near


@pytest.mark.parametrize("where", ["arbiter", *KINDS])
def test_an_unknown_command_names_the_closest_known_one(arb, where):
    target = "arbiter" if where == "arbiter" else spawn(concurrency=where).result(SPAWN_T)
    # From a process actor too: the message travels the wire unchanged.
    with pytest.raises(CommandNotFound) as err:
        send(target, "pnig").result(T)
    assert str(err.value) == "unknown command 'pnig': did you mean 'ping'?"
    with pytest.raises(CommandNotFound) as err:
        send(target, "em_nothing_like_it").result(T)
    assert str(err.value) == "unknown command 'em_nothing_like_it'"
