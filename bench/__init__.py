"""``python -m bench``: actorgrpc's benchmarks, each figure with its ratio to references.

Every group runs in a subprocess of its own (see ``bench.runner``), so that a
group's actors, servers and threads cannot disturb the next one and nothing
outlives it. The references (raw gRPC, ``multiprocessing.Pipe``, pykka,
Thespian, Ray when installed) are measured in the same run as actorgrpc's
figures, on the same machine, so that the ratios stay meaningful on a noisy
host. ``bench.report`` lists every figure, its reference and its target.

Modules: one per group (``raw_grpc``: the raw gRPC echo reference;
``references``: Pipe, pykka, Thespian, Ray; ``latency``; ``throughput``, with
no-ack; ``payloads``; ``spawning``; ``scale``). ``runner`` runs a group in its
subprocess and cleans up after it; ``report`` holds the catalogue of figures,
references and targets, and renders the table; ``commands`` holds the commands
the benchmark's actors run; ``wire_client`` the plain grpc.aio clients;
``actors`` and ``common`` helpers; ``profiling`` the cProfile runs behind
docs/performance.md.
"""
