"""A first end-to-end look: spawn both kinds, ping them."""

from actorgrpc import send, spawn


def test_spawn_and_ping(arb):
    thread = spawn(concurrency="thread").result(10)
    process = spawn().result(30)
    assert send(thread, "ping").result(5) == "pong"
    assert send(process, "ping").result(5) == "pong"
    assert send(process.aid, "ping").result(5) == "pong"
