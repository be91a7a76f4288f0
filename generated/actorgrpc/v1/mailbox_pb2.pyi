from actorgrpc.v1 import value_pb2 as _value_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnvelopeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENVELOPE_KIND_UNSPECIFIED: _ClassVar[EnvelopeKind]
    ENVELOPE_KIND_REQUEST: _ClassVar[EnvelopeKind]
    ENVELOPE_KIND_REPLY: _ClassVar[EnvelopeKind]
    ENVELOPE_KIND_BATCH: _ClassVar[EnvelopeKind]
    ENVELOPE_KIND_FLOW: _ClassVar[EnvelopeKind]
    ENVELOPE_KIND_CANCEL: _ClassVar[EnvelopeKind]

class FlowState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLOW_STATE_UNSPECIFIED: _ClassVar[FlowState]
    FLOW_STATE_FULL: _ClassVar[FlowState]
    FLOW_STATE_ROOM: _ClassVar[FlowState]

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERROR_CODE_COMMAND_FAILED: _ClassVar[ErrorCode]
    ERROR_CODE_UNKNOWN_COMMAND: _ClassVar[ErrorCode]
    ERROR_CODE_NO_SUCH_ACTOR: _ClassVar[ErrorCode]
    ERROR_CODE_ACTOR_NOT_AVAILABLE: _ClassVar[ErrorCode]
    ERROR_CODE_TIMEOUT: _ClassVar[ErrorCode]
    ERROR_CODE_BAD_REQUEST: _ClassVar[ErrorCode]
    ERROR_CODE_RESOURCE_EXHAUSTED: _ClassVar[ErrorCode]
    ERROR_CODE_PERMISSION_DENIED: _ClassVar[ErrorCode]
ENVELOPE_KIND_UNSPECIFIED: EnvelopeKind
ENVELOPE_KIND_REQUEST: EnvelopeKind
ENVELOPE_KIND_REPLY: EnvelopeKind
ENVELOPE_KIND_BATCH: EnvelopeKind
ENVELOPE_KIND_FLOW: EnvelopeKind
ENVELOPE_KIND_CANCEL: EnvelopeKind
FLOW_STATE_UNSPECIFIED: FlowState
FLOW_STATE_FULL: FlowState
FLOW_STATE_ROOM: FlowState
ERROR_CODE_UNSPECIFIED: ErrorCode
ERROR_CODE_COMMAND_FAILED: ErrorCode
ERROR_CODE_UNKNOWN_COMMAND: ErrorCode
ERROR_CODE_NO_SUCH_ACTOR: ErrorCode
ERROR_CODE_ACTOR_NOT_AVAILABLE: ErrorCode
ERROR_CODE_TIMEOUT: ErrorCode
ERROR_CODE_BAD_REQUEST: ErrorCode
ERROR_CODE_RESOURCE_EXHAUSTED: ErrorCode
ERROR_CODE_PERMISSION_DENIED: ErrorCode

class Envelope(_message.Message):
    __slots__ = ("id", "kind", "sender", "target", "action", "args", "kwargs", "no_reply", "result", "error", "batch", "flow", "chain", "timeout_ms")
    class KwargsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _value_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_value_pb2.Value, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    KWARGS_FIELD_NUMBER: _ClassVar[int]
    NO_REPLY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    id: int
    kind: EnvelopeKind
    sender: _value_pb2.ActorRef
    target: str
    action: str
    args: _containers.RepeatedCompositeFieldContainer[_value_pb2.Value]
    kwargs: _containers.MessageMap[str, _value_pb2.Value]
    no_reply: bool
    result: _value_pb2.Value
    error: Error
    batch: _containers.RepeatedCompositeFieldContainer[Envelope]
    flow: FlowState
    chain: bytes
    timeout_ms: int
    def __init__(self, id: _Optional[int] = ..., kind: _Optional[_Union[EnvelopeKind, str]] = ..., sender: _Optional[_Union[_value_pb2.ActorRef, _Mapping]] = ..., target: _Optional[str] = ..., action: _Optional[str] = ..., args: _Optional[_Iterable[_Union[_value_pb2.Value, _Mapping]]] = ..., kwargs: _Optional[_Mapping[str, _value_pb2.Value]] = ..., no_reply: _Optional[bool] = ..., result: _Optional[_Union[_value_pb2.Value, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., batch: _Optional[_Iterable[_Union[Envelope, _Mapping]]] = ..., flow: _Optional[_Union[FlowState, str]] = ..., chain: _Optional[bytes] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "type", "message", "traceback", "undelivered")
    CODE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    UNDELIVERED_FIELD_NUMBER: _ClassVar[int]
    code: ErrorCode
    type: str
    message: str
    traceback: str
    undelivered: bool
    def __init__(self, code: _Optional[_Union[ErrorCode, str]] = ..., type: _Optional[str] = ..., message: _Optional[str] = ..., traceback: _Optional[str] = ..., undelivered: _Optional[bool] = ...) -> None: ...
