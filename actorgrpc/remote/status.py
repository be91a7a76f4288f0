"""How actorgrpc's errors show as gRPC status codes (servers and clients alike)."""

from __future__ import annotations

import grpc

from actorgrpc.v1 import mailbox_pb2

__all__ = ["ERROR_METADATA_KEY", "STATUS_BY_CODE"]

_C = mailbox_pb2.ErrorCode
#: How each actorgrpc error code shows as a gRPC status.
STATUS_BY_CODE: dict[int, grpc.StatusCode] = {
    _C.ERROR_CODE_UNSPECIFIED: grpc.StatusCode.UNKNOWN,
    _C.ERROR_CODE_COMMAND_FAILED: grpc.StatusCode.UNKNOWN,
    _C.ERROR_CODE_UNKNOWN_COMMAND: grpc.StatusCode.UNIMPLEMENTED,
    _C.ERROR_CODE_NO_SUCH_ACTOR: grpc.StatusCode.NOT_FOUND,
    _C.ERROR_CODE_ACTOR_NOT_AVAILABLE: grpc.StatusCode.UNAVAILABLE,
    _C.ERROR_CODE_TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    _C.ERROR_CODE_BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    _C.ERROR_CODE_RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    _C.ERROR_CODE_PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
}
#: Trailing metadata key carrying the serialized Error of a failed Send.
ERROR_METADATA_KEY = "actorgrpc-error-bin"
