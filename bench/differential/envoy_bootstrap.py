#!/usr/bin/env python3
"""Turns xdsd resource files (bare "@type" documents) into one Envoy static
bootstrap, the way `xdsd render --envoy-static` does, but without xdsd's own
checks: the referee's view of a config, for `envoy --mode validate`.

    envoy_bootstrap.py FILE_OR_DIR... > bootstrap.json

Clusters, listeners and secrets become static resources; an HTTP connection
manager's `rds` whose RouteConfiguration is present is inlined as
`route_config`; an EDS cluster with `eds_cluster_config` whose
ClusterLoadAssignment is present becomes STATIC with that `load_assignment`;
SDS configs fetched over xDS refer to a static secret of that name instead. What is absent is left as written.
"""
import json
import os
import sys

import yaml

KINDS = {
    "envoy.config.cluster.v3.Cluster": "clusters",
    "envoy.config.listener.v3.Listener": "listeners",
    "envoy.extensions.transport_sockets.tls.v3.Secret": "secrets",
    "envoy.config.route.v3.RouteConfiguration": "routes",
    "envoy.config.endpoint.v3.ClusterLoadAssignment": "endpoints",
}


def files_of(paths):
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if name.endswith((".yaml", ".yml", ".json")) and not name.startswith("."):
                        yield os.path.join(root, name)
        else:
            yield path


def resources(paths):
    found = {kind: [] for kind in KINDS.values()}
    for path in files_of(paths):
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if not isinstance(doc, dict):
                    continue
                url = str(doc.get("@type", ""))
                kind = KINDS.get(url.rsplit("/", 1)[-1])
                if kind:
                    body = dict(doc)
                    body.pop("@type")
                    found[kind].append(body)
    return found


def inline_rds(value, routes):
    if isinstance(value, dict):
        name = (value.get("rds") or {}).get("route_config_name") if isinstance(value.get("rds"), dict) else None
        if str(value.get("@type", "")).endswith(".HttpConnectionManager") and name:
            route = next((r for r in routes if r.get("name") == name), None)
            if route is not None:
                del value["rds"]
                value["route_config"] = route
        for child in value.values():
            inline_rds(child, routes)
    elif isinstance(value, list):
        for child in value:
            inline_rds(child, routes)


def static_cluster(cluster, endpoints):
    # Without eds_cluster_config Envoy refuses an EDS cluster (eds.cc); the
    # static form must not hide that.
    if cluster.get("type") != "EDS" or "eds_cluster_config" not in cluster:
        return cluster
    eds = cluster.get("eds_cluster_config") or {}
    name = eds.get("service_name") or cluster.get("name")
    assignment = next((e for e in endpoints if e.get("cluster_name") == name), None)
    if assignment is not None:
        cluster.pop("eds_cluster_config", None)
        cluster["type"] = "STATIC"
        cluster["load_assignment"] = assignment
    return cluster


def drop_xds_sds(value):
    if isinstance(value, dict):
        source = value.get("sds_config")
        over_xds = isinstance(source, dict) and "path" not in source and "path_config_source" not in source
        if over_xds and "name" in value:
            del value["sds_config"]
        for child in value.values():
            drop_xds_sds(child)
    elif isinstance(value, list):
        for child in value:
            drop_xds_sds(child)


def bootstrap(paths):
    found = resources(paths)
    clusters = [static_cluster(c, found["endpoints"]) for c in found["clusters"]]
    listeners = found["listeners"]
    inline_rds(listeners, found["routes"])
    static = {"clusters": clusters, "listeners": listeners, "secrets": found["secrets"]}
    drop_xds_sds(static)
    return {"static_resources": static}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    json.dump(bootstrap(sys.argv[1:]), sys.stdout, indent=1, default=str)
    print()
