"""A proxyless gRPC client for tests/it/grpc_proxyless.rs.

Resolves TARGET (e.g. xds:///greeter) through the xDS server named in
GRPC_XDS_BOOTSTRAP, waits (up to --ready-timeout seconds) for the channel to
be ready, then calls grpc.health.v1.Health/Check(service="") in a loop for
--duration seconds. One line per RPC on stdout:

    ok UNIX_TIME SERVER          (SERVER from the `x-server` metadata)
    error UNIX_TIME CODE DETAILS

Exit 0 only if at least one RPC ran and every RPC succeeded with SERVING.
"""

import argparse
import os
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="xds:///greeter")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="seconds to loop; 0 = one RPC")
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--rpc-timeout", type=float, default=2.0)
    parser.add_argument("--ready-timeout", type=float, default=15.0)
    args = parser.parse_args()

    if not os.environ.get("GRPC_XDS_BOOTSTRAP"):
        print("GRPC_XDS_BOOTSTRAP is not set", file=sys.stderr, flush=True)
        return 2

    channel = grpc.insecure_channel(args.target)
    try:
        grpc.channel_ready_future(channel).result(timeout=args.ready_timeout)
    except grpc.FutureTimeoutError:
        print(f"error {time.time():.6f} NOT_READY channel not ready within "
              f"{args.ready_timeout}s", flush=True)
        return 1
    print(f"ready {time.time():.6f}", flush=True)

    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="")
    deadline = time.monotonic() + args.duration
    ok = failed = 0
    while True:
        try:
            response, call = stub.Check.with_call(request, timeout=args.rpc_timeout)
            server = dict(call.initial_metadata()).get("x-server", "?")
            if response.status == health_pb2.HealthCheckResponse.SERVING:
                ok += 1
                print(f"ok {time.time():.6f} {server}", flush=True)
            else:
                failed += 1
                print(f"error {time.time():.6f} NOT_SERVING {server} "
                      f"status={response.status}", flush=True)
        except grpc.RpcError as e:
            failed += 1
            details = (e.details() or "").replace("\n", " ")
            print(f"error {time.time():.6f} {e.code().name} {details}", flush=True)
        if time.monotonic() >= deadline:
            break
        time.sleep(args.interval)
    channel.close()
    print(f"done ok={ok} failed={failed}", flush=True)
    return 0 if ok > 0 and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
