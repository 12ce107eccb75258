"""A Python client of augur's public protos: generates stubs from proto/, streams
samples as an agent would, then reads the prioritized list.

Usage: python3 agent_client.py PROTO_DIR OUT_DIR LPS_ADDRESS
Prints one JSON line with what it saw; exits non-zero on any failure.
"""
import json
import os
import sys
import threading
import time

from grpc_tools import protoc

proto_dir, out_dir, address = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(out_dir, exist_ok=True)
well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
files = ["augur/v1/common.proto", "augur/v1/telemetry.proto", "augur/v1/load_prediction.proto"]
code = protoc.main(["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files])
if code != 0:
    sys.exit(f"protoc failed with {code}")
sys.path.insert(0, out_dir)

import grpc  # noqa: E402
from augur.v1 import common_pb2, load_prediction_pb2, load_prediction_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc  # noqa: E402


def messages():
    yield telemetry_pb2.AgentMessage(
        hello=telemetry_pb2.AgentHello(
            endpoint_id="py-1", service="pysvc", address="127.0.0.1", port=7001,
            capacity=common_pb2.Capacity(cpu_cores=4, memory_bytes=8 << 30, network_bytes_per_second=1.25e8),
            labels={"lang": "python"},
        )
    )
    for seq in range(1, 6):
        sample = telemetry_pb2.EndpointData(
            endpoint_id="py-1", cpu_usage=0.1 * seq, memory_usage=0.4, network_io=1e5,
            response_time=0.02, sequence=seq, health=common_pb2.PROBE_HEALTH_SERVING,
        )
        sample.timestamp.GetCurrentTime()
        yield telemetry_pb2.AgentMessage(sample=sample)
    # One bad sample: the LPS must name the field and keep the stream.
    bad = telemetry_pb2.EndpointData(endpoint_id="py-1", cpu_usage=2.0, sequence=6)
    bad.timestamp.GetCurrentTime()
    yield telemetry_pb2.AgentMessage(sample=bad)
    # Keep the stream open (a live agent) until the list has been read.
    done.wait(10)


done = threading.Event()
seen = {"config_seconds": None, "acked": 0, "errors": []}


def report(channel):
    telemetry = telemetry_pb2_grpc.TelemetryStub(channel)
    for msg in telemetry.Report(messages(), timeout=15):
        kind = msg.WhichOneof("message")
        if kind == "config":
            seen["config_seconds"] = msg.config.monitoring_interval.seconds + msg.config.monitoring_interval.nanos / 1e9
        elif kind == "ack":
            seen["acked"] = max(seen["acked"], msg.ack.last_sequence)
        elif kind == "error":
            seen["errors"].append({"field": msg.error.field, "code": msg.error.code})


with grpc.insecure_channel(address) as channel:
    reporter = threading.Thread(target=report, args=(channel,))
    reporter.start()

    predictions = load_prediction_pb2_grpc.LoadPredictionStub(channel)
    deadline = time.time() + 5
    while True:
        try:
            lst = predictions.GetPrioritizedEndpoints(load_prediction_pb2.GetPrioritizedEndpointsRequest(service="pysvc"), timeout=2)
            if lst.endpoints and lst.endpoints[0].score > 0 and seen["errors"]:
                break
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.NOT_FOUND or time.time() > deadline:
                raise
        if time.time() > deadline:
            sys.exit("no prioritized list for pysvc")
        time.sleep(0.1)
    seen["list"] = [{"id": e.endpoint_id, "score": e.score, "weight": e.weight, "state": common_pb2.EndpointState.Name(e.state)} for e in lst.endpoints]
    seen["version"] = lst.version
    done.set()
    reporter.join(15)
    print(json.dumps(seen))
