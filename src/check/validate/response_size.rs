//! The size of what one node is sent: a state-of-the-world response (and a
//! delta client's first) carries every resource of a type, and gRPC clients
//! refuse a message over their default limit although Envoy accepts it, so
//! a set fit for Envoy can still starve a proxyless client.

use super::facts::Facts;
use crate::check::Rule;
use crate::config::diag::Diagnostics;
use crate::config::resource::Resource;
use crate::config::schema::ResourceType;
use crate::config::selector::NodeSelector;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One type's resources over gRPC's default message limit.
pub static RESPONSE_SIZE: Rule = Rule {
    id: "response-over-grpc-limit",
    summary: "a node's resources of one type exceed gRPC's default 4 MiB message size",
    explanation: "A state-of-the-world response (and a delta client's first one) carries every resource of \
the type: over 4 MiB, gRPC clients refuse it by default (GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH). Envoy accepts \
more.",
    ..Rule::WARNING
};

/// What gRPC clients accept in one message by default (Envoy's own limit is higher).
pub const CLIENT_MESSAGE_LIMIT: usize = 4 * 1024 * 1024;

/// Warns when one type's resources, as one node sees them, would make a
/// response over [`CLIENT_MESSAGE_LIMIT`]: a SotW response carries them
/// all, and so does a client's first delta response. A node is estimated
/// to see the resources for everyone plus those of one selector.
pub(super) fn check_response_sizes(
    resources: &[Resource],
    facts: &[Arc<Facts>],
    diags: &mut Diagnostics,
) {
    let mut shared: HashMap<ResourceType, usize> = HashMap::new();
    let mut targeted: HashMap<(ResourceType, &NodeSelector), (usize, &Resource)> = HashMap::new();
    for (r, f) in resources.iter().zip(facts) {
        let size = f.encoded_len;
        if r.selector.is_everyone() {
            *shared.entry(r.rtype).or_default() += size;
        }
        let slot = targeted.entry((r.rtype, &r.selector)).or_insert((0, r));
        if !r.selector.is_everyone() {
            slot.0 += size;
        }
    }
    // Only the groups over the limit are sorted (for a stable report): with
    // a selector per node there are as many groups as nodes.
    let mut over: Vec<_> = targeted
        .into_iter()
        .map(|((rtype, selector), (own, first))| {
            let total = own + shared.get(&rtype).copied().unwrap_or(0);
            (rtype, selector, total, first)
        })
        .filter(|(_, _, total, _)| *total > CLIENT_MESSAGE_LIMIT)
        .collect();
    over.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut warned: HashSet<ResourceType> = HashSet::new();
    for (rtype, selector, total, first) in over {
        if warned.insert(rtype) {
            diags.report(
                &RESPONSE_SIZE,
                first.location(),
                format!(
                    "a node matching {} gets {:.1} MiB of {} resources in one response; gRPC clients refuse messages over 4 MiB by default (GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH), Envoy accepts more",
                    selector.describe(),
                    total as f64 / (1024.0 * 1024.0),
                    rtype.kind_name()
                ),
            );
        }
    }
}
