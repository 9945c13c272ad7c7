//! The holdover: a client that connects while a change may be under way (a
//! reconnect, a restarted xdsd) is presumed to hold the previous set. Its
//! warming types (clusters and endpoints) stay in the responses until the
//! client's listeners and routes are on the current set, as in a
//! transition, or until [`STAGE_TIMEOUT`].

use super::transition::{STAGE_TIMEOUT, WARMING};
use super::{TypeState, Wire};
use crate::config::schema::ResourceType;
use crate::xds::Resources;
use crate::xds::snapshot::{Entry, Snapshot, View};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::time::Instant;

/// The types through which a client uses clusters: a reconnecting Envoy
/// asks for routes only after listeners, so both must be current.
const USERS: [ResourceType; 2] = [ResourceType::Listener, ResourceType::RouteConfiguration];

/// What a client is presumed to hold beside the current set.
pub struct Holdover {
    /// The previous set's version.
    pub previous: String,
    view: Arc<View>,
    /// Held at most until then.
    pub until: Instant,
}

impl Holdover {
    /// For a client of `node` connecting at `now` to `snapshot`: the previous
    /// set's view, if `snapshot` knows one.
    pub fn begin(
        snapshot: &Snapshot,
        node: &crate::config::selector::NodeIdentity,
        now: Instant,
    ) -> Option<Holdover> {
        let previous = snapshot.predecessor()?;
        Some(Holdover {
            previous: previous.version.clone(),
            view: previous.view(node),
            until: now + STAGE_TIMEOUT,
        })
    }

    /// The previous set's resources of `rtype` (warming types only) that the
    /// client may hold and `new` lacks; `None` when there are none, or the
    /// client said it has exactly the current set (`current`).
    pub fn held_back<W: Wire>(
        &self,
        rtype: ResourceType,
        state: Option<&TypeState>,
        current: Option<&String>,
        new: &Resources,
    ) -> Option<BTreeMap<String, Arc<Entry>>> {
        if !WARMING.contains(&rtype) {
            return None;
        }
        let previous = self.view.of(rtype)?;
        let state = state.filter(|s| s.resumed)?;
        if Some(&state.sent_version) == current {
            return None;
        }
        // A client that said what it has holds only that.
        let told = W::told_holdings(state);
        let held: BTreeMap<String, Arc<Entry>> = previous
            .resources
            .iter()
            .filter(|(name, _)| !new.contains_key(*name))
            .filter(|(name, _)| told.is_none_or(|has| has.contains_key(*name)))
            .map(|(name, e)| (name.clone(), Arc::clone(e)))
            .collect();
        (!held.is_empty()).then_some(held)
    }

    /// Over once the client's listeners and routes are on `view` (or at
    /// [`Holdover::until`]).
    pub fn over<W: Wire>(
        &self,
        now: Instant,
        view: &View,
        types: &BTreeMap<ResourceType, TypeState>,
    ) -> bool {
        // Nothing the client holds of `rtype` is older than the view (and its
        // last response is answered).
        let current = |rtype: ResourceType| {
            let view = view.of(rtype).map(|t| &t.resources);
            let now = |name: &String, version: &String| {
                view.and_then(|v| v.get(name))
                    .is_some_and(|e| &e.version == version)
            };
            types.get(&rtype).is_none_or(|s| {
                let held = match W::told_holdings(s) {
                    Some(has) => has.iter().all(|(n, v)| now(n, v)),
                    None => s.sent.iter().all(|(n, e)| now(n, &e.version)),
                };
                !s.subscribed || !s.unanswered && held
            })
        };
        // Every user type that the node is served at all must be asked for.
        let asked = |t: &ResourceType| types.get(t).is_some_and(|s| s.subscribed);
        let moved = USERS.iter().any(asked)
            && USERS
                .into_iter()
                .all(|t| (view.of(t).is_none() || asked(&t)) && current(t));
        moved || now >= self.until
    }
}
