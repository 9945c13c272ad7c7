"""A gRPC server for tests/it/grpc_proxyless.rs: the standard grpc.health.v1.Health
service on 127.0.0.1:PORT, SERVING for "" and for its own NAME.

Every Health/Check answer carries initial metadata `x-server: NAME`, so a
client can tell which server answered one RPC. Usage:

    server.py --port PORT --name NAME [--xds]

With --xds it is an xDS-enabled server (gRFC A36, C-core): it asks the xDS
server in GRPC_XDS_BOOTSTRAP for the Listener
`grpc/server?xds.resource.listening_address=127.0.0.1:PORT` and accepts
connections only once it has a valid one.
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
    parser.add_argument("--xds", action="store_true")
    args = parser.parse_args()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), xds=args.xds)
    servicer = NamedHealth(args.name)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set(args.name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    address = f"127.0.0.1:{args.port}"
    if args.xds:
        credentials = grpc.xds_server_credentials(grpc.insecure_server_credentials())
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        print(f"cannot bind {address}", file=sys.stderr, flush=True)
        sys.exit(1)
    server.start()
    print(f"{args.name} serving on {address}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
