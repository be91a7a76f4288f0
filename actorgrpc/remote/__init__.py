"""Layer 3, remote: the gRPC wire.

The typed-value codec (``wire.py``), envelopes and the core's codec of them
(``envelopes.py``), batching outboxes (``outbox.py``), connections to peers
(``connection.py``), the grpc.aio server and its servicers (``server.py``,
``supervisor_service.py``: plain data <-> protobuf at the edge), the
Supervisor client (``supervisor_client.py``), the wire form of the
supervisor link's data (``supervisor_messages.py``), status codes (``status.py``),
security (``security.py``: secret, TLS) and the one IO loop per process with
its routing (``transport.py``). It imports the core and supervision; nothing
below imports it.
"""

__all__: list[str] = []
