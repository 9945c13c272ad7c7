"""A gRPC server for tests/it/grpc_proxyless.rs: the standard grpc.health.v1.Health
service on 127.0.0.1:PORT, SERVING for "" and for its own NAME.

Every Health/Check answer carries initial metadata `x-server: NAME`, so a
client can tell which server answered one RPC. Usage:

    health_server.py --port PORT --name NAME
"""

import argparse
import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


class NamedHealth(health.HealthServicer):
    def __init__(self, name):
        super().__init__()
        self._name = name

    def Check(self, request, context):
        context.send_initial_metadata((("x-server", self._name),))
        return super().Check(request, context)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    servicer = NamedHealth(args.name)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set(args.name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    address = f"127.0.0.1:{args.port}"
    if server.add_insecure_port(address) == 0:
        print(f"cannot bind {address}", file=sys.stderr, flush=True)
        sys.exit(1)
    server.start()
    print(f"{args.name} serving on {address}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
