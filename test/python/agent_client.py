"""A Python client of augur's public protos: generates stubs from all four files of
proto/augur/v1 with Debian's grpc_tools (its protoc predates proto3 `optional`), streams
samples as an agent would, reads the prioritized list, and has ResponseRouter deliver a
payload to the endpoint it announced (an HTTP server in this process).

Usage: python3 agent_client.py PROTO_DIR OUT_DIR LPS_ADDRESS
Prints one JSON line with what it saw; exits non-zero on any failure.
"""
import http.server
import json
import os
import sys
import threading
import time

from grpc_tools import protoc

proto_dir, out_dir, address = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(out_dir, exist_ok=True)
well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
files = ["augur/v1/common.proto", "augur/v1/telemetry.proto", "augur/v1/load_prediction.proto",
         "augur/v1/response_router.proto"]
code = protoc.main(["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files])
if code != 0:
    sys.exit(f"protoc failed with {code}")
sys.path.insert(0, out_dir)

import grpc  # noqa: E402
from augur.v1 import common_pb2, load_prediction_pb2, load_prediction_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc  # noqa: E402
from augur.v1 import response_router_pb2, response_router_pb2_grpc  # noqa: E402

delivered = []


class Callback(http.server.BaseHTTPRequestHandler):
    """The endpoint itself: takes what ResponseRouter delivers."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        delivered.append({"path": self.path, "body": body.decode(), "x_from": self.headers.get("x-from")})
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


endpoint = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Callback)
threading.Thread(target=endpoint.serve_forever, daemon=True).start()


def messages():
    yield telemetry_pb2.AgentMessage(
        hello=telemetry_pb2.AgentHello(
            endpoint_id="py-1", service="pysvc", address="127.0.0.1", port=endpoint.server_address[1],
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

    # dynamic_routing_enabled was `optional`; it is a one-field oneof now, with the same presence.
    unset = response_router_pb2.RouteResponseRequest()
    route = response_router_pb2.RouteResponseRequest(
        service="pysvc", payload=b"hello from python", content_type="text/plain",
        http=response_router_pb2.HttpDelivery(path="/callback", headers={"x-from": "python"}),
        dynamic_routing_enabled=False,
    )
    seen["presence"] = {"unset": unset.HasField("dynamic_routing_enabled"),
                        "set_false": route.HasField("dynamic_routing_enabled"),
                        "oneof": route.WhichOneof("dynamic_routing")}
    routed = response_router_pb2_grpc.ResponseRouterStub(channel).RouteResponse(route, timeout=10)
    seen["route"] = {"endpoint_id": routed.endpoint_id, "status_code": routed.status_code,
                     "body": routed.response_body.decode(), "attempts": len(routed.attempts),
                     "delivered": delivered}
    done.set()
    reporter.join(15)
    endpoint.shutdown()
    print(json.dumps(seen))
