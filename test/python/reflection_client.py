"""A client that knows nothing of augur but its address, as grpcurl is: it builds a
descriptor pool from gRPC server reflection alone, describes augur's services and calls
augur.v1.LoadPrediction/ListEndpoints with messages made from that pool.

Debian has no python3-grpcio-reflection, so the reflection protocol's own stubs are
generated here from grpc/reflection/v1/reflection.proto (what that package ships
prebuilt); nothing of augur's protos is read from disk.

Usage: python3 reflection_client.py REFLECTION_PROTO_DIR OUT_DIR ADDRESS SERVICE
Prints one JSON line with what it saw; exits non-zero on any failure.
"""
import json
import os
import shutil
import sys

from grpc_tools import protoc

reflection_proto_dir, out_dir, address, service_filter = sys.argv[1:5]
os.makedirs(out_dir, exist_ok=True)
# Compiled under another file name: a Python package named grpc/ would hide grpcio's.
source_dir = os.path.join(out_dir, "src")
os.makedirs(source_dir, exist_ok=True)
shutil.copy(os.path.join(reflection_proto_dir, "grpc/reflection/v1/reflection.proto"),
            os.path.join(source_dir, "server_reflection.proto"))
code = protoc.main(["protoc", f"-I{source_dir}", f"--python_out={out_dir}",
                    f"--grpc_python_out={out_dir}", "server_reflection.proto"])
if code != 0:
    sys.exit(f"protoc failed with {code}")
sys.path.insert(0, out_dir)

import grpc  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory  # noqa: E402
import server_reflection_pb2 as reflection_pb2  # noqa: E402
import server_reflection_pb2_grpc as reflection_pb2_grpc  # noqa: E402


def message_class(descriptor):
    # protobuf 4.21 (Debian 12) has MessageFactory.GetPrototype; later ones GetMessageClass.
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)


class ReflectionPool:
    """A descriptor pool filled on demand from the server's reflection answers."""

    def __init__(self, channel):
        self.stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        self.pool = descriptor_pool.DescriptorPool()
        self.added = set()
        self.received = {}

    def ask(self, **request):
        responses = list(self.stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=10))
        assert len(responses) == 1, f"expected one answer, got {len(responses)}"
        return responses[0]

    def list_services(self):
        return [s.name for s in self.ask(list_services="").list_services_response.service]

    def load_symbol(self, symbol):
        answer = self.ask(file_containing_symbol=symbol)
        if answer.HasField("error_response"):
            return answer.error_response
        self._take(answer)
        return None

    def _take(self, answer):
        for raw in answer.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            self.received[proto.name] = proto
        for name in list(self.received):
            self._add(name)

    def _add(self, name):
        # Dependencies first; one the server did not send is asked for by name.
        if name in self.added:
            return
        if name not in self.received:
            answer = self.ask(file_by_filename=name)
            if answer.HasField("error_response"):
                raise RuntimeError(f"file {name}: {answer.error_response.error_message}")
            for raw in answer.file_descriptor_response.file_descriptor_proto:
                proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
                self.received.setdefault(proto.name, proto)
        proto = self.received[name]
        for dep in proto.dependency:
            self._add(dep)
        self.pool.Add(proto)
        self.added.add(name)


def describe(service):
    methods = []
    for m in service.methods:
        methods.append({
            "name": m.name,
            "input": m.input_type.full_name,
            "output": m.output_type.full_name,
            "client_streaming": m.client_streaming if hasattr(m, "client_streaming") else None,
        })
    return {"file": service.file.name, "methods": methods}


def map_fields(message):
    return sorted(f.name for f in message.fields
                  if f.message_type is not None and f.message_type.GetOptions().map_entry)


with grpc.insecure_channel(address) as channel:
    grpc.channel_ready_future(channel).result(timeout=10)
    reflection = ReflectionPool(channel)
    seen = {"services": reflection.list_services(), "described": {}, "not_described": {}}
    for name in seen["services"]:
        error = reflection.load_symbol(name)
        if error is not None:
            seen["not_described"][name] = {"code": error.error_code, "message": error.error_message}
            continue
        seen["described"][name] = describe(reflection.pool.FindServiceByName(name))

    method = reflection.pool.FindMethodByName("augur.v1.LoadPrediction.ListEndpoints")
    request_class = message_class(method.input_type)
    response_class = message_class(method.output_type)
    seen["map_fields"] = {
        "augur.v1.EndpointInfo": map_fields(reflection.pool.FindMessageTypeByName("augur.v1.EndpointInfo")),
        "augur.v1.AgentHello": map_fields(reflection.pool.FindMessageTypeByName("augur.v1.AgentHello")),
        "augur.v1.HttpDelivery": map_fields(reflection.pool.FindMessageTypeByName("augur.v1.HttpDelivery")),
    }
    call = channel.unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_class.FromString,
    )
    request = json_format.ParseDict({"service": service_filter}, request_class())
    response = call(request, timeout=10)
    seen["list_endpoints"] = json_format.MessageToDict(response, preserving_proto_field_name=True)
    print(json.dumps(seen))
