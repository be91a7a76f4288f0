from actorgrpc.v1 import value_pb2 as _value_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HandshakeRequest(_message.Message):
    __slots__ = ("aid", "name", "address", "pid", "kind", "language", "spawn_token", "commands")
    AID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SPAWN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    aid: str
    name: str
    address: str
    pid: int
    kind: str
    language: str
    spawn_token: str
    commands: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, aid: _Optional[str] = ..., name: _Optional[str] = ..., address: _Optional[str] = ..., pid: _Optional[int] = ..., kind: _Optional[str] = ..., language: _Optional[str] = ..., spawn_token: _Optional[str] = ..., commands: _Optional[_Iterable[str]] = ...) -> None: ...

class HandshakeResponse(_message.Message):
    __slots__ = ("arbiter", "notify_period", "session_token")
    ARBITER_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_PERIOD_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    arbiter: _value_pb2.ActorRef
    notify_period: float
    session_token: str
    def __init__(self, arbiter: _Optional[_Union[_value_pb2.ActorRef, _Mapping]] = ..., notify_period: _Optional[float] = ..., session_token: _Optional[str] = ...) -> None: ...

class NotifyRequest(_message.Message):
    __slots__ = ("aid", "state", "info", "error", "traceback", "session_token")
    AID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    aid: str
    state: int
    info: _value_pb2.Value
    error: str
    traceback: str
    session_token: str
    def __init__(self, aid: _Optional[str] = ..., state: _Optional[int] = ..., info: _Optional[_Union[_value_pb2.Value, _Mapping]] = ..., error: _Optional[str] = ..., traceback: _Optional[str] = ..., session_token: _Optional[str] = ...) -> None: ...

class NotifyResponse(_message.Message):
    __slots__ = ("known",)
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    known: bool
    def __init__(self, known: _Optional[bool] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ActorSummary(_message.Message):
    __slots__ = ("ref", "kind", "language", "pid", "state", "info_state", "uptime", "memory_rss", "commands_handled", "last_notified", "supervisor", "info")
    REF_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INFO_STATE_FIELD_NUMBER: _ClassVar[int]
    UPTIME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_RSS_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_HANDLED_FIELD_NUMBER: _ClassVar[int]
    LAST_NOTIFIED_FIELD_NUMBER: _ClassVar[int]
    SUPERVISOR_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    ref: _value_pb2.ActorRef
    kind: str
    language: str
    pid: int
    state: int
    info_state: str
    uptime: float
    memory_rss: int
    commands_handled: int
    last_notified: float
    supervisor: str
    info: _value_pb2.Value
    def __init__(self, ref: _Optional[_Union[_value_pb2.ActorRef, _Mapping]] = ..., kind: _Optional[str] = ..., language: _Optional[str] = ..., pid: _Optional[int] = ..., state: _Optional[int] = ..., info_state: _Optional[str] = ..., uptime: _Optional[float] = ..., memory_rss: _Optional[int] = ..., commands_handled: _Optional[int] = ..., last_notified: _Optional[float] = ..., supervisor: _Optional[str] = ..., info: _Optional[_Union[_value_pb2.Value, _Mapping]] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("actors", "terminated")
    ACTORS_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_FIELD_NUMBER: _ClassVar[int]
    actors: _containers.RepeatedCompositeFieldContainer[ActorSummary]
    terminated: _value_pb2.Value
    def __init__(self, actors: _Optional[_Iterable[_Union[ActorSummary, _Mapping]]] = ..., terminated: _Optional[_Union[_value_pb2.Value, _Mapping]] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: str
    def __init__(self, target: _Optional[str] = ...) -> None: ...

class LookupResponse(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: _value_pb2.ActorRef
    def __init__(self, ref: _Optional[_Union[_value_pb2.ActorRef, _Mapping]] = ...) -> None: ...
