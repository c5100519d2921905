"""The ledger test server: proto2 required fields, and google.protobuf.Any in every position of its replies."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format, message_factory

from easnb._proto import load_pool
from easnb.protoc import compile_descriptor_set

PROTO = Path(__file__).parent / "protos" / "ledger.proto"
NOTES = Path(__file__).parent / "protos" / "ledger_notes.proto"
NOTE_URL = "type.googleapis.com/notes.Note"
SERVICE = "ledger.Ledger"
UNKNOWN_URL = "type.googleapis.com/nowhere.Unknown"


class Ledger:
    """Serves ``ledger.Ledger`` with reflection; records each entry it receives as proto3 JSON."""

    def __init__(self) -> None:
        self.pool = load_pool(compile_descriptor_set(PROTO), compile_descriptor_set(NOTES))
        self.Entry, self.Holder, self.Secret, self.Any, self.Timestamp = (
            message_factory.GetMessageClass(self.pool.FindMessageTypeByName(n))
            for n in ("ledger.Entry", "ledger.Holder", "ledger.Secret", "google.protobuf.Any", "google.protobuf.Timestamp")
        )
        self.received: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        from grpc_reflection.v1alpha import reflection as grpc_reflection

        self.reflection_calls = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(8), handlers=[self._handler()], interceptors=[_Counter(self)])
        grpc_reflection.enable_server_reflection([SERVICE], self.server, pool=self.pool)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def secret_any(self, code: str) -> Any:
        packed = self.Any()
        inner = self.Any(type_url=UNKNOWN_URL, value=b"\x08\x01")
        secret = self.Secret(code=code, inner=inner)
        secret.when.seconds = 86400
        packed.Pack(secret)
        return packed

    def holder(self, entry: Any) -> Any:
        stamp = self.Any()
        stamp.Pack(self.Timestamp(seconds=5))
        reply = self.Holder(payload=self.secret_any(entry.name), entry=entry, total=2**62 + 1)
        reply.items.extend([self.secret_any("first"), self.Any(type_url=UNKNOWN_URL, value=b"\x00\xffraw"), stamp])
        reply.named["secret"].CopyFrom(self.secret_any("named"))
        reply.named["unknown"].CopyFrom(self.Any(type_url=UNKNOWN_URL, value=b"xyz"))
        reply.numbered[7].CopyFrom(stamp)
        note = message_factory.GetMessageClass(self.pool.FindMessageTypeByName("notes.Note"))(text="hi")
        reply.named["note"].Pack(note)
        return reply

    def _keep(self, raw: bytes) -> Any:
        entry = self.Entry.FromString(raw)
        self.raw.append(raw)
        try:
            self.received.append(json_format.MessageToDict(entry, preserving_proto_field_name=True, descriptor_pool=self.pool))
        except TypeError:  # an Any of a type this server does not know either
            self.received.append({"name": entry.name})
        return entry

    def put(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        return self.holder(self._keep(raw)).SerializeToString()

    def collect(self, raws: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        entries = [self._keep(raw) for raw in raws]
        reply = self.Holder(total=sum(e.n for e in entries))
        return reply.SerializeToString()

    def chat(self, raws: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for raw in raws:
            entry = self._keep(raw)
            yield self.Holder(entry=entry, total=entry.n).SerializeToString()

    def _handler(self) -> grpc.GenericRpcHandler:
        # bytes in and out: the server accepts anything, so only the client can have checked the requests
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Put": grpc.unary_unary_rpc_method_handler(self.put),
            "Collect": grpc.stream_unary_rpc_method_handler(self.collect),
            "Chat": grpc.stream_stream_rpc_method_handler(self.chat),
        })

    def stop(self) -> None:
        self.server.stop(None)


class _Counter(grpc.ServerInterceptor):
    """Counts the calls to the server's reflection (each look-up of a type easnb does not know)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        if "ServerReflection" in details.method:
            self._ledger.reflection_calls += 1
        return continuation(details)
