"""Layer 4, hosting: the composition root.

``arbiter.py`` wires the layers together into a running tree (settings, the
remote transport, the supervision's arbiter); ``child.py`` is how a process
actor's child starts; ``client.py`` is ``connect()``, a client of a running
tree from another process; ``system.py`` gives actors their process figures
(psutil). Nothing below imports it.
"""

__all__: list[str] = []
