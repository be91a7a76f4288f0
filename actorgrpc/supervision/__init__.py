"""Layer 2, supervision: the tree.

The arbiter's semantics (``arbiter.py``: spawning, monitors, stopping the
tree), the supervisor's registry with its liveness checks and death records
(``supervisor.py``, ``managed.py``), pools that keep workers alive
(``pools.py``), and the runners that run an actor in a child process, on a
thread or as a task (``runners.py``). It imports the core only: what crosses
the supervisor link is plain data; the wire form of it is the remote layer's.
"""

__all__: list[str] = []
