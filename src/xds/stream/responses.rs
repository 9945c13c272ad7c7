//! Responses: what the client should have of a type now (the view, the
//! transition's mode for the type, the holdover), what its subscription
//! takes of that, and the response when that differs from what it holds.

use super::engine::Engine;
use super::subscriptions::{Choice, join, overlay};
use super::transition::{Mode, Stages};
use super::{Changes, Effect, Outgoing, Record, Wire};
use crate::config::schema::ResourceType;
use crate::xds::Resources;
use crate::xds::snapshot::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::time::Instant;

/// What a response sends although the client has it.
pub enum Force {
    /// Only what changed.
    Nothing,
    /// A response even when nothing changed (a new delta client's first answer).
    Answer,
    /// These resources again (endpoints of clusters being re-warmed).
    Names(Arc<BTreeSet<String>>),
}

impl Force {
    /// Does it force `name`?
    pub fn includes(&self, name: &str) -> bool {
        matches!(self, Force::Names(names) if names.contains(name))
    }

    /// Does it force any of `chosen`?
    pub fn any_of(&self, chosen: &BTreeMap<String, Arc<Entry>>) -> bool {
        matches!(self, Force::Names(names) if names.iter().any(|n| chosen.contains_key(n)))
    }
}

impl<W: Wire> Engine<W> {
    /// What the client should have for `rtype` now, before its subscription
    /// narrows it, and the set's version when it is the view's whole set.
    /// Shares the view's map whenever the mode makes no difference, which
    /// is every type but the one or two a change is about.
    fn desired(&self, rtype: ResourceType) -> (Resources, Option<String>) {
        let (new, version) = match self.view.of(rtype) {
            Some(t) => (Arc::clone(&t.resources), Some(t.version.clone())),
            None => (Resources::default(), None),
        };
        let state = self.types.get(&rtype);
        let current = self.view.of(rtype).map(|t| &t.version);
        let held = self
            .holdover
            .as_ref()
            .and_then(|h| h.held_back::<W>(rtype, state, current, &new));
        if let Some(held) = held {
            return (overlay(&held, &new), None);
        }
        let Some(sent) = state.map(|s| &s.sent) else {
            return (new, version);
        };
        // Shared with every stream that had the previous view's map.
        let diff = self
            .stages
            .diff
            .as_ref()
            .and_then(|t| t.diff(rtype, sent, &new));
        match self.stages.mode(rtype) {
            // The client was given this very map: the type did not change.
            _ if Arc::ptr_eq(sent, &new) => (new, version),
            Mode::New => (new, version),
            // Old plus new is new when nothing old is going away.
            Mode::Union
                if diff.map_or_else(
                    || {
                        join(sent.iter(), new.iter(), |_, s, n| {
                            s.is_none() || n.is_some()
                        })
                    },
                    |d| d.removed.is_empty(),
                ) =>
            {
                (new, version)
            }
            // What the client has plus new names is new when nothing it has changed.
            Mode::Hold
                if diff.map_or_else(
                    || {
                        join(sent.iter(), new.iter(), |_, s, n| match (s, n) {
                            (Some(s), Some(n)) => s.version == n.version,
                            (s, _) => s.is_none(),
                        })
                    },
                    |d| d.removed.is_empty() && d.changed.is_empty(),
                ) =>
            {
                (new, version)
            }
            Mode::Union => (overlay(sent, &new), None),
            Mode::Hold => (overlay(&new, sent), None),
        }
    }

    /// Sends `rtype` if the client is subscribed and its content changed (or
    /// `force` says so). Returns the nonce when something was sent.
    pub(super) fn respond(&mut self, rtype: ResourceType, force: &Force) -> Option<String> {
        if self.stages.withholds(rtype) {
            return None;
        }
        let (desired, whole_version) = self.desired(rtype);
        let state = self.types.get_mut(&rtype).filter(|s| s.subscribed)?;
        if let Some(choice) = state.remembered(&desired)
            && Arc::ptr_eq(&choice.chosen, &state.sent)
            && matches!(force, Force::Nothing)
        {
            // Same set, same subscription, and the client was given exactly this.
            return None;
        }
        let transition = self.stages.diff.as_deref();
        let (chosen, version) = state.choose(transition, rtype, &desired, whole_version);
        state.choice = Some(Choice {
            from: desired,
            generation: state.generation,
            chosen: Arc::clone(&chosen),
            version: version.clone(),
        });
        let Some(changes) = W::changes(state, transition, rtype, &chosen, &version, force) else {
            // The client has exactly this (it said so, or it was sent it).
            W::now_holds(state, None);
            if !Arc::ptr_eq(&state.sent, &chosen) {
                state.sent = Arc::clone(&chosen);
                let resources = Arc::clone(&chosen);
                self.effects
                    .push(Effect::Record(Record::Holds { rtype, resources }));
            }
            return None;
        };
        W::now_holds(state, Some(&changes));
        if rtype == ResourceType::ClusterLoadAssignment {
            let now = self.view.of(rtype).map(|t| &t.resources);
            note_rewarm_carried::<W>(&mut self.stages, now, &chosen, &changes);
        }
        self.next_nonce += 1;
        let nonce = self.next_nonce.to_string();
        let response = W::outgoing(Outgoing {
            type_url: rtype.type_url(),
            version: &version,
            nonce: &nonce,
            all: &chosen,
            changes,
        });
        state.nonce = nonce.clone();
        state.sent_version = version.clone();
        state.sent = chosen;
        state.unanswered = true;
        // Only pushes of a change are timed, not a client's first fetch.
        state.change_made = self.stages.times_pushes().then_some(self.snapshot.created);
        if rtype == ResourceType::Cluster {
            self.stages.note_clusters_sent();
        }
        let bytes = prost::Message::encoded_len(&response);
        let resources = Arc::clone(&state.sent);
        self.effects.push(Effect::Record(Record::Sent {
            rtype,
            version,
            resources,
            bytes,
        }));
        self.effects.push(Effect::Send(response));
        Some(nonce)
    }
}

/// The time from a change to now, for the push latency histogram.
pub(super) fn since(made: std::time::Instant, now: Instant) -> std::time::Duration {
    now.into_std().saturating_duration_since(made)
}

/// Notes the re-warming endpoints a response carries as they are `now`
/// (SotW carries everything chosen, delta only the changes), so that the
/// rewarm stage does not send them again.
fn note_rewarm_carried<W: Wire>(
    stages: &mut Stages,
    now: Option<&Resources>,
    chosen: &Resources,
    changes: &Changes<'_>,
) {
    for name in stages.rewarm_awaited().iter() {
        let carried = if W::INCREMENTAL {
            changes.changed.iter().copied().find(|e| &e.name == name)
        } else {
            chosen.get(name)
        };
        let current = now.and_then(|m| m.get(name));
        if carried
            .zip(current)
            .is_some_and(|(c, n)| c.version == n.version)
        {
            stages.note_rewarm_sent(name);
        }
    }
}
