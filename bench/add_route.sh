#!/bin/sh
# The change of an "add a cluster and route to it" trial, as users make it:
# DIR/moving.yaml (made by gen_config.py --moving) is rewritten with one
# more EDS cluster, svc-added-K, its endpoints, and routes-0 sending its
# route to it; written beside it under a dot name and renamed into place,
# so xdsd sees one change. Envoy must get the cluster and its endpoints
# before the route (make-before-break). POSIX sh, no Python: its start-up
# would be timed.
# usage: add_route.sh DIR
set -e
dir=$1
k=$(($(cat "$dir/.added" 2>/dev/null || echo 0) + 1))
echo "$k" >"$dir/.added"
tmp="$dir/.moving.yaml.tmp"
: >"$tmp"
i=1
while [ "$i" -le "$k" ]; do
  cat >>"$tmp" <<DOC
"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: svc-added-$i
connect_timeout: 0.5s
type: EDS
eds_cluster_config: {eds_config: {ads: {}, resource_api_version: V3}}
---
"@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
cluster_name: svc-added-$i
endpoints:
- lb_endpoints:
  - endpoint: {address: {socket_address: {address: 10.255.0.$((i % 250 + 1)), port_value: 8080}}}
---
DOC
  i=$((i + 1))
done
cat >>"$tmp" <<DOC
"@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
name: routes-0
virtual_hosts:
- name: vh-0
  domains: ["host-0.example.com"]
  routes:
  - match: {prefix: /api/0}
    route: {cluster: svc-added-$k, timeout: 5s}
DOC
mv "$tmp" "$dir/moving.yaml"
