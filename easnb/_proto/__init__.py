"""The V2 and hello-world messages, built in easnb's own descriptor pool.

The pool is private, so the standard names (``inference.ModelInferRequest``) are
kept, the wire is exactly standard, and nothing is registered in protobuf's
default pool where tritonclient, KServe or MLServer register theirs.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor_pb2 import FileDescriptorSet
from google.protobuf.message import Message

from . import _descriptors

V2_SERVICE = "inference.GRPCInferenceService"
GREETER_SERVICE = "helloworld.GreeterService"
HEALTH_SERVICE = "grpc.health.v1.Health"
MODEL_REPOSITORY_SERVICE = "inference.model_repository.ModelRepositoryService"


def load_pool(*descriptor_sets: bytes) -> descriptor_pool.DescriptorPool:
    """A new private pool holding the files of the given serialized FileDescriptorSets."""
    pool = descriptor_pool.DescriptorPool()
    for data in descriptor_sets:
        for file in FileDescriptorSet.FromString(data).file:
            pool.Add(file)
    return pool


POOL = load_pool(
    _descriptors.GRPC_PREDICT_V2,
    _descriptors.HELLOWORLD,
    _descriptors.HEALTH,
    _descriptors.RPC_STATUS,
    _descriptors.MODEL_REPOSITORY,
    _descriptors.MODEL_STATISTICS,
)


def message_class(full_name: str, pool: descriptor_pool.DescriptorPool = POOL) -> type[Message]:
    """The message class for a full name such as ``inference.ModelInferRequest``."""
    cls: type[Message] = message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))
    return cls


ServerLiveRequest = message_class("inference.ServerLiveRequest")
ServerLiveResponse = message_class("inference.ServerLiveResponse")
ServerReadyRequest = message_class("inference.ServerReadyRequest")
ServerReadyResponse = message_class("inference.ServerReadyResponse")
ModelReadyRequest = message_class("inference.ModelReadyRequest")
ModelReadyResponse = message_class("inference.ModelReadyResponse")
ServerMetadataRequest = message_class("inference.ServerMetadataRequest")
ServerMetadataResponse = message_class("inference.ServerMetadataResponse")
ModelMetadataRequest = message_class("inference.ModelMetadataRequest")
ModelMetadataResponse = message_class("inference.ModelMetadataResponse")
ModelInferRequest = message_class("inference.ModelInferRequest")
ModelInferResponse = message_class("inference.ModelInferResponse")
InferParameter = message_class("inference.InferParameter")
InferTensorContents = message_class("inference.InferTensorContents")
HelloRequest = message_class("helloworld.HelloRequest")
HelloResponse = message_class("helloworld.HelloResponse")
HealthCheckRequest = message_class("grpc.health.v1.HealthCheckRequest")
HealthCheckResponse = message_class("grpc.health.v1.HealthCheckResponse")
_RpcStatus = message_class("easnb.rpc.Status")
RepositoryIndexRequest = message_class("inference.model_repository.RepositoryIndexRequest")
RepositoryIndexResponse = message_class("inference.model_repository.RepositoryIndexResponse")
ModelStatisticsRequest = message_class("inference.ModelStatisticsRequest")
ModelStatisticsResponse = message_class("inference.ModelStatisticsResponse")


def rpc_status_details(data: bytes) -> tuple[Any, ...]:
    """The details of a serialized ``google.rpc.Status``, as ``google.protobuf.Any`` messages."""
    from google.protobuf import any_pb2
    from google.protobuf.message import DecodeError

    try:
        status = _RpcStatus.FromString(data)
    except DecodeError:
        return ()
    return tuple(any_pb2.Any(type_url=d.type_url, value=d.value) for d in status.details)


def method_path(service: str, method: str) -> str:
    """The HTTP/2 path of a method: ``/inference.GRPCInferenceService/ModelInfer``."""
    return f"/{service}/{method}"
