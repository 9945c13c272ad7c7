//! Load balancing: the legacy `lb_policy` with its `*_lb_config`, the typed
//! `load_balancing_policy`, and subsets.
//!
//! Envoy only checks a load balancer's config when it builds it at load:
//! the legacy configs when their `lb_policy` is the one used, the typed
//! policy it picks (the first entry whose type it knows). Children of a
//! subset policy are built per subset later, in the workers.
//!
//! The hash-based policies' sizes are in `ring_hash_maglev.rs`, subset
//! selectors in `subset.rs`; this file resolves which policy a cluster uses
//! and checks the rest.

mod ring_hash_maglev;
mod subset;

use super::{Cluster, STRICT_DNS, any_type, enum_number, field, messages, sub, unpacked, with};
use crate::check::{Finding, Rule};
use crate::config::reflect::list;
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};
use ring_hash_maglev::{ring_sizes, table_size};
use subset::subset_selectors;

pub use ring_hash_maglev::{MAGLEV_NOT_PRIME, RING_HASH_MIN_ABOVE_MAX};
pub use subset::SUBSET_FALLBACK_KEYS;

/// CLUSTER_PROVIDED on a cluster without its own load balancer.
pub static CLUSTER_PROVIDED_UNSUPPORTED: Rule = Rule {
    id: "lb-cluster-provided-unsupported",
    summary: "lb_policy CLUSTER_PROVIDED (or the typed cluster_provided policy) on a cluster type that has no built-in load balancer",
    explanation: "CLUSTER_PROVIDED means \"use the cluster's own load balancer\", and only cluster types such \
as ORIGINAL_DST, aggregate, dynamic_forward_proxy and redis have one; Envoy refuses it elsewhere. For a STATIC, \
DNS or EDS cluster, pick a real policy such as ROUND_ROBIN, LEAST_REQUEST, RING_HASH or MAGLEV.",
    envoy: "source/common/upstream/cluster_manager_impl.cc",
    ..Rule::ERROR
};

/// A cluster with its own load balancer that does not say CLUSTER_PROVIDED.
pub static CLUSTER_PROVIDED_REQUIRED: Rule = Rule {
    id: "lb-cluster-provided-required",
    summary: "an aggregate, dynamic_forward_proxy or redis cluster does not use lb_policy CLUSTER_PROVIDED",
    explanation: "Aggregate, dynamic forward proxy and redis clusters choose hosts with their own load \
balancer, and Envoy insists that the cluster says so with `lb_policy: CLUSTER_PROVIDED`. The default \
ROUND_ROBIN is refused. Tune the load balancing of the underlying clusters instead (for aggregate: on each \
sub-cluster).",
    envoy: "source/common/upstream/cluster_manager_impl.cc",
    ..Rule::ERROR
};

/// Hashing by hostname on a cluster that keeps no hostnames.
pub static HOSTNAME_HASHING: Rule = Rule {
    id: "lb-hostname-hashing-non-strict-dns",
    summary: "common_lb_config.consistent_hashing_lb_config.use_hostname_for_hashing is set on a cluster whose type is not STRICT_DNS",
    explanation: "Hashing by hostname needs the hostname each endpoint was resolved from, which only \
STRICT_DNS clusters keep per host; Envoy refuses the option on other cluster types. Hash by address (remove \
the option), or make the cluster STRICT_DNS.",
    envoy: "source/common/upstream/cluster_factory_impl.cc",
    ..Rule::ERROR
};

/// load_balancing_policy with the legacy lb_subset_config.
pub static WITH_SUBSET_CONFIG: Rule = Rule {
    id: "lb-policy-with-subset-config",
    summary: "load_balancing_policy is combined with lb_subset_config",
    explanation: "Once `load_balancing_policy` is used, the legacy lb_subset_config is not read, and Envoy \
refuses the combination. Express subsetting as the `envoy.load_balancing_policies.subset` policy with its own \
subset_selectors and child policy, or drop lb_subset_config.",
    envoy: "source/common/upstream/upstream_impl.cc",
    ..Rule::ERROR
};

/// load_balancing_policy with policy settings in common_lb_config.
pub static WITH_COMMON_LB_PARTIAL: Rule = Rule {
    id: "lb-policy-with-common-lb-partial",
    summary: "load_balancing_policy is combined with common_lb_config zone_aware_lb_config, locality_weighted_lb_config or consistent_hashing_lb_config",
    explanation: "With load_balancing_policy, zone awareness, locality weighting and consistent-hashing \
options belong to the policy's own config (for example RingHash.consistent_hashing_lb_config or \
RoundRobin.locality_lb_config), and Envoy refuses them in common_lb_config. Move them there.",
    envoy: "source/common/upstream/upstream_impl.cc",
    ..Rule::ERROR
};

/// No load-balancing policy Envoy knows.
pub static NONE_SUPPORTED: Rule = Rule {
    id: "lb-policy-none-supported",
    summary: "load_balancing_policy (or a Subset policy's subset_lb_policy) has no policy Envoy knows (or is missing while lb_policy is LOAD_BALANCING_POLICY_CONFIG)",
    explanation: "Envoy walks load_balancing_policy.policies in order, uses the first policy whose config type \
it has (the name is ignored), and refuses the cluster when it has none. Add a built-in policy (for example \
round_robin) as a last-entry fallback, and check the `@type` URLs. The same holds for the child policy of the \
Subset policy, `subset_lb_policy`, which must be given (\"didn't find a registered load balancer factory \
implementation for subset lb with names from [...]\").",
    envoy: "source/common/upstream/upstream_impl.cc",
    ..Rule::ERROR
};

/// locality_weight_aware subsets without locality weighting.
pub static SUBSET_LOCALITY_WEIGHT_AWARE: Rule = Rule {
    id: "lb-subset-locality-weight-aware",
    summary: "lb_subset_config.locality_weight_aware is set without common_lb_config.locality_weighted_lb_config",
    explanation: "Locality-weight-aware subsetting uses the locality weights, which Envoy only honours when \
locality-weighted load balancing is enabled, so it refuses the option alone. Add \
`common_lb_config.locality_weighted_lb_config: {}` or drop locality_weight_aware.",
    envoy: "source/common/upstream/upstream_impl.cc",
    ..Rule::ERROR
};

/// Subsets of a cluster-provided load balancer.
pub static SUBSET_CLUSTER_PROVIDED: Rule = Rule {
    id: "lb-subset-cluster-provided",
    summary: "legacy lb_subset_config with selectors is combined with lb_policy CLUSTER_PROVIDED",
    explanation: "Subsetting wraps one of Envoy's own load balancers, while CLUSTER_PROVIDED hands host \
selection to the cluster, so Envoy refuses the combination. Remove lb_subset_config.",
    envoy: "source/extensions/load_balancing_policies/subset/config.cc",
    ..Rule::ERROR
};

/// wrr_locality with a picker other than client-side weighted round robin.
pub static WRR_LOCALITY_ENDPOINT_POLICY: Rule = Rule {
    id: "lb-wrr-locality-endpoint-policy",
    summary: "the wrr_locality policy's endpoint_picking_policy is not client_side_weighted_round_robin",
    explanation: "The wrr_locality policy, as used for proxyless gRPC and xDS-style weighted localities, only \
works with client-side weighted round robin as the per-endpoint picker in Envoy, which refuses any other. Use \
ClientSideWeightedRoundRobin there, or use a plain round_robin policy with locality weights.",
    envoy: "source/extensions/load_balancing_policies/wrr_locality/config.h",
    ..Rule::ERROR
};

/// `Cluster.LbPolicy` values.
const RING_HASH: i32 = 2;
const MAGLEV: i32 = 5;
const CLUSTER_PROVIDED: i32 = 6;
const LOAD_BALANCING_POLICY_CONFIG: i32 = 7;

const POLICY_PACKAGE: &str = "envoy.extensions.load_balancing_policies.";
const CLUSTER_PROVIDED_TYPE: &str =
    "envoy.extensions.load_balancing_policies.cluster_provided.v3.ClusterProvided";
const RING_HASH_TYPE: &str = "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash";
const MAGLEV_TYPE: &str = "envoy.extensions.load_balancing_policies.maglev.v3.Maglev";
const SUBSET_TYPE: &str = "envoy.extensions.load_balancing_policies.subset.v3.Subset";
const WRR_LOCALITY_TYPE: &str =
    "envoy.extensions.load_balancing_policies.wrr_locality.v3.WrrLocality";
const CSWRR_TYPE: &str = "envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin";

/// Cluster types whose factory provides no load balancer.
const WITHOUT_LB: [&str; 5] = [
    "envoy.cluster.static",
    "envoy.cluster.strict_dns",
    "envoy.cluster.logical_dns",
    "envoy.cluster.eds",
    "envoy.cluster.dns",
];

/// Extension clusters that provide their own load balancer (ORIGINAL_DST
/// has its own, earlier check).
const WITH_LB: [&str; 3] = [
    "envoy.clusters.aggregate",
    "envoy.clusters.dynamic_forward_proxy",
    "envoy.clusters.redis",
];

/// The policy a `LoadBalancingPolicy` resolves to: the first entry whose type
/// Envoy has a factory for (all of them live in one package).
struct Chosen<'m> {
    /// From the LoadBalancingPolicy to the entry's typed_config.
    path: Vec<PathStep>,
    type_name: String,
    any: &'m DynamicMessage,
}

fn chosen(policy: &DynamicMessage) -> Option<Chosen<'_>> {
    let (pf, entries) = messages(policy, "policies")?;
    entries.into_iter().find_map(|(i, entry)| {
        let (ef, extension) = sub(entry, "typed_extension_config")?;
        let (tf, any) = sub(extension, "typed_config")?;
        let type_name = any_type(any)?;
        type_name.starts_with(POLICY_PACKAGE).then(|| Chosen {
            path: vec![
                PathStep::Field(pf.clone()),
                PathStep::Index(i),
                PathStep::Field(ef),
                PathStep::Field(tf),
            ],
            type_name,
            any,
        })
    })
}

/// How the cluster balances load.
enum Lb<'m> {
    /// `lb_policy` and its `*_lb_config`.
    Legacy(i32),
    /// `load_balancing_policy` resolved to this policy (path from the cluster).
    Typed(Chosen<'m>),
    /// `load_balancing_policy` resolves to nothing Envoy knows.
    Unresolved,
}

impl<'m> Lb<'m> {
    fn of(c: &Cluster<'m>) -> Self {
        let lb_policy = enum_number(c.m, "lb_policy").unwrap_or(0);
        let Some((f, policy)) = sub(c.m, "load_balancing_policy") else {
            if lb_policy == LOAD_BALANCING_POLICY_CONFIG {
                return Lb::Unresolved;
            }
            return Lb::Legacy(lb_policy);
        };
        match chosen(policy) {
            Some(mut chosen) => {
                chosen.path.insert(0, PathStep::Field(f));
                Lb::Typed(chosen)
            }
            None => Lb::Unresolved,
        }
    }

    fn is_cluster_provided(&self) -> bool {
        match self {
            Lb::Legacy(p) => *p == CLUSTER_PROVIDED,
            Lb::Typed(chosen) => chosen.type_name == CLUSTER_PROVIDED_TYPE,
            Lb::Unresolved => false,
        }
    }
}

/// The legacy subset load balancer is used: selectors are configured.
fn legacy_subset_active(m: &DynamicMessage) -> bool {
    sub(m, "lb_subset_config")
        .and_then(|(_, s)| list(s, "subset_selectors"))
        .is_some_and(|(_, l)| !l.is_empty())
}

pub(super) fn check(c: &Cluster<'_>, out: &mut Vec<Finding>) {
    let lb = Lb::of(c);
    cluster_provided(c, &lb, out);
    hostname_hashing(c, out);
    match &lb {
        Lb::Legacy(policy) => legacy(c, *policy, out),
        Lb::Typed(chosen) => typed(chosen, out),
        Lb::Unresolved => {}
    }
    if !matches!(lb, Lb::Legacy(_)) {
        typed_with_legacy_fields(c, out);
    }
    none_supported(c, out);
}

fn cluster_provided(c: &Cluster<'_>, lb: &Lb<'_>, out: &mut Vec<Finding>) {
    let Some(factory) = c.factory() else {
        return;
    };
    // ROUND_ROBIN (0) written out is not "set" in proto3: the path then
    // locates at the cluster's first line when the key is absent.
    let lb_policy_at: Vec<PathStep> =
        c.m.descriptor()
            .get_field_by_name("lb_policy")
            .map(PathStep::Field)
            .into_iter()
            .collect();
    if WITHOUT_LB.contains(&factory) && lb.is_cluster_provided() {
        let text = format!(
            "cluster '{}' ({factory}) does not provide a load balancer; CLUSTER_PROVIDED needs ORIGINAL_DST, aggregate, dynamic_forward_proxy, redis...",
            c.name
        );
        out.push(match lb {
            Lb::Typed(chosen) => {
                Finding::missing_in(&CLUSTER_PROVIDED_UNSUPPORTED, chosen.path.clone(), text)
            }
            _ => Finding::at(&CLUSTER_PROVIDED_UNSUPPORTED, lb_policy_at.clone(), text),
        });
    }
    if WITH_LB.contains(&factory) && !lb.is_cluster_provided() && !matches!(lb, Lb::Unresolved) {
        let text = format!(
            "cluster '{}' ({factory}) provides its own load balancer; set lb_policy: CLUSTER_PROVIDED",
            c.name
        );
        out.push(Finding::at(&CLUSTER_PROVIDED_REQUIRED, lb_policy_at, text));
    }
}

fn hostname_hashing(c: &Cluster<'_>, out: &mut Vec<Finding>) {
    let Some((cf, common)) = sub(c.m, "common_lb_config") else {
        return;
    };
    let Some((hf, hashing)) = sub(common, "consistent_hashing_lb_config") else {
        return;
    };
    let Some((uf, Value::Bool(true))) = field(hashing, "use_hostname_for_hashing") else {
        return;
    };
    // Envoy tests the `type` enum, whatever cluster_type says.
    if c.discovery == STRICT_DNS {
        return;
    }
    let kind = match &c.extension {
        Some(ext) => ext.name.clone(),
        None => format!(
            "envoy.cluster.{}",
            super::kind::enum_name(c.m, "type", c.discovery).to_ascii_lowercase()
        ),
    };
    out.push(Finding::at(
        &HOSTNAME_HASHING,
        vec![
            PathStep::Field(cf),
            PathStep::Field(hf),
            PathStep::Field(uf),
        ],
        format!(
            "use_hostname_for_hashing needs a STRICT_DNS cluster (cluster '{}' is {kind})",
            c.name
        ),
    ));
}

fn legacy(c: &Cluster<'_>, policy: i32, out: &mut Vec<Finding>) {
    let subset = legacy_subset_active(c.m);
    if policy == CLUSTER_PROVIDED && subset {
        if let Some((f, _)) = field(c.m, "lb_subset_config") {
            out.push(Finding::at(
                &SUBSET_CLUSTER_PROVIDED,
                vec![PathStep::Field(f)],
                "lb_subset_config cannot be used with lb_policy CLUSTER_PROVIDED",
            ));
        }
    } else if subset && let Some((f, config)) = sub(c.m, "lb_subset_config") {
        subset_selectors(config, &[PathStep::Field(f)], out);
    }
    if let Some((sf, config)) = sub(c.m, "lb_subset_config")
        && let Some((wf, Value::Bool(true))) = field(config, "locality_weight_aware")
        && !sub(c.m, "common_lb_config")
            .is_some_and(|(_, common)| common.has_field_by_name("locality_weighted_lb_config"))
    {
        out.push(Finding::at(
            &SUBSET_LOCALITY_WEIGHT_AWARE,
            vec![PathStep::Field(sf), PathStep::Field(wf)],
            "lb_subset_config.locality_weight_aware needs common_lb_config.locality_weighted_lb_config",
        ));
    }
    // The child load balancer of an active subset is only built per subset, in the workers.
    if subset {
        return;
    }
    if policy == RING_HASH
        && let Some((f, config)) = sub(c.m, "ring_hash_lb_config")
    {
        ring_sizes(config, &[PathStep::Field(f)], out);
    }
    if policy == MAGLEV
        && let Some((f, config)) = sub(c.m, "maglev_lb_config")
    {
        table_size(config, &[PathStep::Field(f)], out);
    }
}

fn typed(chosen: &Chosen<'_>, out: &mut Vec<Finding>) {
    let Some(config) = unpacked(chosen.any, &chosen.type_name) else {
        return;
    };
    match chosen.type_name.as_str() {
        RING_HASH_TYPE => ring_sizes(&config, &chosen.path, out),
        MAGLEV_TYPE => table_size(&config, &chosen.path, out),
        SUBSET_TYPE => {
            subset_selectors(&config, &chosen.path, out);
            subset_child(&config, &chosen.path, out);
        }
        WRR_LOCALITY_TYPE => wrr_locality(&config, &chosen.path, out),
        _ => {}
    }
}

/// With load_balancing_policy, the legacy subset and policy settings are refused.
fn typed_with_legacy_fields(c: &Cluster<'_>, out: &mut Vec<Finding>) {
    if let Some((f, _)) = field(c.m, "lb_subset_config") {
        out.push(Finding::at(
            &WITH_SUBSET_CONFIG,
            vec![PathStep::Field(f)],
            "load_balancing_policy cannot be combined with lb_subset_config; use the Subset policy inside load_balancing_policy",
        ));
    }
    let Some((cf, common)) = sub(c.m, "common_lb_config") else {
        return;
    };
    for name in [
        "zone_aware_lb_config",
        "locality_weighted_lb_config",
        "consistent_hashing_lb_config",
    ] {
        if let Some((f, _)) = field(common, name) {
            out.push(Finding::at(
                &WITH_COMMON_LB_PARTIAL,
                vec![PathStep::Field(cf.clone()), PathStep::Field(f)],
                format!("common_lb_config.{name} cannot be used with load_balancing_policy; configure it inside the policy"),
            ));
        }
    }
}

fn none_supported(c: &Cluster<'_>, out: &mut Vec<Finding>) {
    let Some((f, policy)) = sub(c.m, "load_balancing_policy") else {
        if enum_number(c.m, "lb_policy") == Some(LOAD_BALANCING_POLICY_CONFIG)
            && let Some((lf, _)) = field(c.m, "lb_policy")
        {
            out.push(Finding::at(
                &NONE_SUPPORTED,
                vec![PathStep::Field(lf)],
                "lb_policy LOAD_BALANCING_POLICY_CONFIG needs load_balancing_policy",
            ));
        }
        return;
    };
    if chosen(policy).is_some() {
        return;
    }
    let entries = messages(policy, "policies");
    let names: Vec<String> = entries
        .iter()
        .flat_map(|(_, items)| items.iter())
        .filter_map(|(_, e)| sub(e, "typed_extension_config"))
        .map(|(_, ext)| super::string(ext, "name").unwrap_or_default())
        .collect();
    let text = format!(
        "no load_balancing_policy entry is a policy Envoy knows (tried: {})",
        names.join(", ")
    );
    let first = entries.as_ref().and_then(|(pf, items)| {
        let (i, entry) = items.first()?;
        let (ef, ext) = sub(entry, "typed_extension_config")?;
        let (tf, _) = field(ext, "typed_config")?;
        Some(vec![
            PathStep::Field(f.clone()),
            PathStep::Field(pf.clone()),
            PathStep::Index(*i),
            PathStep::Field(ef),
            PathStep::Field(tf),
        ])
    });
    out.push(match first {
        Some(path) => Finding::missing_in(&NONE_SUPPORTED, path, text),
        None => Finding::at(&NONE_SUPPORTED, vec![PathStep::Field(f)], text),
    });
}

/// The Subset policy's child: subset_lb_config.cc takes the first entry of
/// `subset_lb_policy.policies` that Envoy has a factory for, and refuses the
/// cluster when there is none, also when `subset_lb_policy` is left out
/// ("didn't find a registered load balancer factory implementation for
/// subset lb with names from [...]").
fn subset_child(config: &DynamicMessage, path: &[PathStep], out: &mut Vec<Finding>) {
    let text = "the Subset policy needs a subset_lb_policy with a policy Envoy knows (for example round_robin)";
    match sub(config, "subset_lb_policy") {
        None => out.push(Finding::missing_in(&NONE_SUPPORTED, path.to_vec(), text)),
        Some((f, child)) if chosen(child).is_none() => out.push(Finding::at(
            &NONE_SUPPORTED,
            with(path, [PathStep::Field(f)]),
            text,
        )),
        Some(_) => {}
    }
}

fn wrr_locality(config: &DynamicMessage, path: &[PathStep], out: &mut Vec<Finding>) {
    let Some((ef, picking)) = sub(config, "endpoint_picking_policy") else {
        return;
    };
    let base = with(path, [PathStep::Field(ef)]);
    match chosen(picking) {
        Some(picker) if picker.type_name != CSWRR_TYPE => {
            let short = picker
                .type_name
                .strip_prefix(POLICY_PACKAGE)
                .and_then(|t| t.split('.').next())
                .unwrap_or(&picker.type_name)
                .to_string();
            out.push(Finding::missing_in(
                &WRR_LOCALITY_ENDPOINT_POLICY,
                with(&base, picker.path),
                format!("wrr_locality endpoint_picking_policy must be client_side_weighted_round_robin (is {short})"),
            ));
        }
        Some(_) => {}
        None => out.push(Finding::at(
            &WRR_LOCALITY_ENDPOINT_POLICY,
            base,
            "wrr_locality endpoint_picking_policy has no supported policy (it must be client_side_weighted_round_robin)",
        )),
    }
}
