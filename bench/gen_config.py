#!/usr/bin/env python3
"""Writes a large, valid xdsd config directory for the lint benchmark.

usage: gen_config.py DIR [CLUSTERS] [ROUTES] [LISTENERS] [--variants] [--moving] [--own N]
Defaults: 10,000 EDS clusters + 10,000 ClusterLoadAssignments, 1,000
RouteConfigurations (10 routes each), 100 listeners (10 filter chains each,
one per route configuration, told apart by SNI).
--variants also writes .endpoints.yaml.a and .endpoints.yaml.b (dot names,
so xdsd skips them): the same endpoints, and the same but for svc-0's port;
bench/flip.sh swaps endpoints.yaml between them (one resource changes).
--moving writes routes-0 to moving.yaml instead, with one route (to svc-0):
bench/add_route.sh rewrites that file to add a cluster and route to it.
--own N gives each of N nodes (ids load-0 ... load-N-1, as xds-load names
them) a STATIC cluster of its own (own-I, `nodes: {id: [load-I]}`), node
0's in own-0.yaml with variants .own-0.yaml.a / .b (another connect
timeout) that bench/flip_own.sh swaps: a change seen by one node only.
"""
import os
import sys

variants = "--variants" in sys.argv
moving = "--moving" in sys.argv
own = 0
if "--own" in sys.argv:
    at = sys.argv.index("--own")
    own = int(sys.argv[at + 1])
    del sys.argv[at:at + 2]
argv = [a for a in sys.argv if a not in ("--variants", "--moving")]
out = argv[1]
clusters = int(argv[2]) if len(argv) > 2 else 10_000
routes = int(argv[3]) if len(argv) > 3 else 1_000
listeners = int(argv[4]) if len(argv) > 4 else 100
chains_per_listener = max(1, routes // listeners)

os.makedirs(out, exist_ok=True)


def write(name, docs):
    with open(os.path.join(out, name), "w") as f:
        f.write("---\n".join(docs))


write("clusters.yaml", [
    f'"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster\n'
    f"name: svc-{i}\nconnect_timeout: 0.5s\ntype: EDS\n"
    f"eds_cluster_config: {{eds_config: {{ads: {{}}, resource_api_version: V3}}}}\n"
    for i in range(clusters)
])
def endpoints(first_port):
    return [
        f'"@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n'
        f"cluster_name: svc-{i}\nendpoints:\n- lb_endpoints:\n"
        f"  - endpoint: {{address: {{socket_address: {{address: 10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}, port_value: {first_port if i == 0 else 8080}}}}}}}\n"
        for i in range(clusters)
    ]


write("endpoints.yaml", endpoints(8080))
if variants:
    write(".endpoints.yaml.a", endpoints(8080))
    write(".endpoints.yaml.b", endpoints(8081))
def route_configuration(r):
    return (
        f'"@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n'
        f"name: routes-{r}\nvirtual_hosts:\n- name: vh-{r}\n  domains: [\"host-{r}.example.com\"]\n  routes:\n"
        + "".join(
            f"  - match: {{prefix: /api/{k}}}\n    route: {{cluster: svc-{(r * 10 + k) % clusters}, timeout: 5s}}\n"
            for k in range(10)
        )
    )


write("routes.yaml", [route_configuration(r) for r in range(1 if moving else 0, routes)])
if moving:
    # Keep in step with bench/add_route.sh, which rewrites this file.
    write("moving.yaml", [
        '"@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\n'
        'name: routes-0\nvirtual_hosts:\n- name: vh-0\n  domains: ["host-0.example.com"]\n  routes:\n'
        "  - match: {prefix: /api/0}\n    route: {cluster: svc-0, timeout: 5s}\n"
    ])
hcm = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
router = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
write("listeners.yaml", [
    f'"@type": type.googleapis.com/envoy.config.listener.v3.Listener\n'
    f"name: listener-{l}\naddress: {{socket_address: {{address: 0.0.0.0, port_value: {10000 + l}}}}}\n"
    f"filter_chains:\n"
    + "".join(
        f"- filter_chain_match: {{server_names: [\"host-{l * chains_per_listener + c}.example.com\"]}}\n"
        f"  filters:\n  - name: envoy.filters.network.http_connection_manager\n    typed_config:\n"
        f"      \"@type\": {hcm}\n      stat_prefix: l{l}c{c}\n"
        f"      rds: {{route_config_name: routes-{l * chains_per_listener + c}, config_source: {{ads: {{}}, resource_api_version: V3}}}}\n"
        f"      http_filters:\n      - name: envoy.filters.http.router\n        typed_config: {{\"@type\": {router}}}\n"
        for c in range(chains_per_listener)
    )
    for l in range(listeners)
])
def own_cluster(i, timeout):
    return (
        f"kind: Cluster\nnodes: {{id: [load-{i}]}}\nspec:\n  name: own-{i}\n  connect_timeout: {timeout}\n"
        f"  type: STATIC\n  load_assignment:\n    cluster_name: own-{i}\n    endpoints:\n"
        f"    - lb_endpoints:\n      - endpoint: {{address: {{socket_address: {{address: 10.254.{i // 256 % 256}.{i % 256}, port_value: 8080}}}}}}\n"
    )


if own:
    write("own.yaml", [own_cluster(i, "1s") for i in range(1, own)])
    write("own-0.yaml", [own_cluster(0, "1s")])
    write(".own-0.yaml.a", [own_cluster(0, "1s")])
    write(".own-0.yaml.b", [own_cluster(0, "2s")])
print(f"{out}: {clusters} clusters, {clusters} endpoints, {routes} route configurations, {listeners} listeners")
