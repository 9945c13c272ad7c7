//! Endpoints Envoy resolves as they are written (a STATIC cluster's, a
//! ClusterLoadAssignment's): each needs an address, and it must be an IP.
//! With them, the cluster shapes that decide where endpoints come from: an
//! EDS cluster needs its EDS config, a LOGICAL_DNS one exactly one endpoint.

use super::{get, missing, socket_ip, step, wrong};
use crate::check::{Finding, Rule};
use crate::config::reflect::list;
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, Value};

/// An EDS cluster that does not say where its endpoints come from.
pub static EDS_WITHOUT_CONFIG: Rule = Rule {
    id: "cluster-eds-without-config",
    summary: "an EDS cluster has no eds_cluster_config",
    explanation: "A cluster of type EDS gets its endpoints over EDS, and `eds_cluster_config.eds_config` says \
from where (`ads: {}` for xdsd); without it Envoy refuses the cluster (\"cannot create an EDS cluster \
without an EDS config\"). A `load_assignment` is no substitute: for endpoints written in the cluster, use \
type STATIC.",
    envoy: "source/extensions/clusters/eds/eds.cc",
    ..Rule::ERROR
};

/// An endpoint without an address.
pub static ENDPOINT_ADDRESS: Rule = Rule {
    id: "endpoint-missing-address",
    summary: "an endpoint has no address",
    explanation: "Every `lb_endpoints[].endpoint` needs an `address` (\"Address must be set\").",
    envoy: "source/common/upstream/upstream_impl.cc",
    ..Rule::ERROR
};

/// A LOGICAL_DNS cluster with several endpoints.
pub static LOGICAL_DNS_ENDPOINTS: Rule = Rule {
    id: "cluster-logical-dns-endpoints",
    summary: "a LOGICAL_DNS cluster does not have exactly one locality with one endpoint",
    explanation: "A LOGICAL_DNS cluster resolves one hostname and connects to whichever address comes back, \
so it takes exactly one locality with one endpoint. For several hostnames use STRICT_DNS.",
    envoy: "source/extensions/clusters/logical_dns/logical_dns_cluster.cc",
    ..Rule::ERROR
};

const STATIC: i32 = 0;
const LOGICAL_DNS: i32 = 2;
const EDS: i32 = 3;

pub(super) fn cluster(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let kind = match get(m, "cluster_type") {
        // The static cluster named as a custom type is built as `type: STATIC`;
        // other custom types have checks of their own.
        Some((_, Value::Message(custom))) if is_static_by_name(custom) => STATIC,
        Some(_) => return,
        None => get(m, "type")
            .and_then(|(_, v)| v.as_enum_number())
            .unwrap_or(STATIC),
    };
    if kind == EDS && !m.has_field_by_name("eds_cluster_config") {
        out.push(wrong(
            &EDS_WITHOUT_CONFIG,
            step(m, "type").into_iter().collect(),
            "an EDS cluster needs `eds_cluster_config` (e.g. `eds_config: {ads: {}}`)".into(),
        ));
    }
    let Some((af, Value::Message(assignment))) = get(m, "load_assignment") else {
        if kind == LOGICAL_DNS {
            out.push(missing(
                &LOGICAL_DNS_ENDPOINTS,
                Vec::new(),
                "a LOGICAL_DNS cluster needs a load_assignment with its single host",
            ));
        }
        return;
    };
    let base = vec![PathStep::Field(af)];
    if kind == STATIC {
        endpoint_ips(assignment, &base, out);
    }
    let localities = list(assignment, "endpoints").map_or(0, |(_, l)| l.len());
    if kind == LOGICAL_DNS && (localities != 1 || lb_endpoints(assignment, &base).len() != 1) {
        out.push(wrong(
            &LOGICAL_DNS_ENDPOINTS,
            base,
            "a LOGICAL_DNS cluster must have exactly one locality with exactly one endpoint".into(),
        ));
    }
}

/// A `cluster_type` that Envoy resolves by its name to the static cluster
/// factory: cluster_factory_impl.cc looks a custom type up by name when it
/// has no typed_config (or a Struct one).
fn is_static_by_name(custom: &DynamicMessage) -> bool {
    let name = get(custom, "name").and_then(|(_, v)| v.as_str().map(str::to_string));
    let by_name = match get(custom, "typed_config") {
        None => true,
        Some((_, Value::Message(any))) => {
            crate::check::extensions::config_type(any) == "google.protobuf.Struct"
        }
        Some(_) => false,
    };
    by_name && name.as_deref() == Some("envoy.cluster.static")
}

/// Every `lb_endpoints` entry of an assignment, with its path.
fn lb_endpoints(
    assignment: &DynamicMessage,
    base: &[PathStep],
) -> Vec<(Vec<PathStep>, DynamicMessage)> {
    let mut found = Vec::new();
    let Some((ef, localities)) = list(assignment, "endpoints") else {
        return found;
    };
    for (i, locality) in localities.iter().enumerate() {
        let Some(locality) = locality.as_message() else {
            continue;
        };
        let Some((lf, items)) = list(locality, "lb_endpoints") else {
            continue;
        };
        for (j, item) in items.iter().enumerate() {
            if let Some(item) = item.as_message() {
                let mut path = base.to_vec();
                path.extend([
                    PathStep::Field(ef.clone()),
                    PathStep::Index(i),
                    PathStep::Field(lf.clone()),
                    PathStep::Index(j),
                ]);
                found.push((path, item.clone()));
            }
        }
    }
    found
}

/// The addresses of a STATIC cluster's or a ClusterLoadAssignment's
/// endpoints, which Envoy resolves as they are written: each must be there
/// ("Address must be set") and be an IP. DNS clusters resolve names later
/// and accept what is missing here.
pub(super) fn endpoint_ips(assignment: &DynamicMessage, base: &[PathStep], out: &mut Vec<Finding>) {
    for (mut path, lb) in lb_endpoints(assignment, base) {
        if lb.has_field_by_name("endpoint_name") {
            continue;
        }
        let Some((ef, Value::Message(endpoint))) = get(&lb, "endpoint") else {
            out.push(missing(
                &ENDPOINT_ADDRESS,
                path,
                "an lb_endpoint needs an `endpoint` with an `address`",
            ));
            continue;
        };
        path.push(PathStep::Field(ef));
        match get(endpoint, "address") {
            Some((af, Value::Message(address))) => {
                let mut at = path.clone();
                at.push(PathStep::Field(af));
                // An empty address breaks its required oneof (reported as such).
                socket_ip(address, at, "endpoint", out);
            }
            _ => out.push(missing(
                &ENDPOINT_ADDRESS,
                path.clone(),
                "an endpoint needs an `address`",
            )),
        }
        // Additional addresses are resolved the same way (and must be IPs too).
        let Some((xf, extra)) = list(endpoint, "additional_addresses") else {
            continue;
        };
        for (i, item) in extra.iter().enumerate() {
            if let Some((af, Value::Message(address))) =
                item.as_message().and_then(|m| get(m, "address"))
            {
                let mut at = path.clone();
                at.extend([
                    PathStep::Field(xf.clone()),
                    PathStep::Index(i),
                    PathStep::Field(af),
                ]);
                socket_ip(address, at, "endpoint additional", out);
            }
        }
    }
}
