//! Per type: what the client asked for, what it was sent and what it holds,
//! and how a subscription chooses from a desired set.

use super::Subscription;
use crate::config::schema::ResourceType;
use crate::xds::Resources;
use crate::xds::snapshot::{Entry, Transition, set_version};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One type of one stream.
#[derive(Default)]
pub struct TypeState {
    /// Bumped whenever the subscription or what the client holds changes
    /// otherwise than by a response: keys the [`Choice`] memo.
    pub(super) generation: u64,
    /// What the subscription last chose, reused while neither it nor the
    /// desired set changed (most responses during a transition).
    pub(super) choice: Option<Choice>,
    /// Everything of the type (SotW: empty list; delta: `*` or legacy empty first request).
    pub(super) wildcard: bool,
    /// Names asked for.
    pub(super) names: BTreeSet<String>,
    /// Whether the client ever asked for this type.
    pub(super) subscribed: bool,
    /// Nonce of the last response.
    pub(super) nonce: String,
    /// Version of the last response.
    pub(super) sent_version: String,
    /// What the client has, as far as xdsd knows: name → version (delta only).
    pub(crate) has: BTreeMap<String, String>,
    /// The client's first request said what it already holds (a SotW
    /// version, delta initial versions): it reconnected.
    pub(super) resumed: bool,
    /// `has` is exactly `sent` (names and versions): a shared
    /// [`Transition`] diff from `sent` is then the client's delta too.
    pub(crate) has_is_sent: bool,
    /// The entries last chosen for the client.
    pub(crate) sent: Resources,
    /// The last response is not answered yet.
    pub(super) unanswered: bool,
    /// When the change the last response carries was made (set during transitions).
    pub(super) change_made: Option<std::time::Instant>,
}

/// A subscription's choice from a desired set.
pub(super) struct Choice {
    /// The desired set it was made from.
    pub(super) from: Resources,
    /// The subscription's generation then.
    pub(super) generation: u64,
    /// The chosen resources.
    pub(super) chosen: Resources,
    /// Their version.
    pub(super) version: String,
}

impl TypeState {
    /// Version of the last response.
    pub fn sent_version(&self) -> &str {
        &self.sent_version
    }

    /// Applies a subscription change.
    pub(super) fn subscribe(&mut self, subscription: Subscription) {
        let first = !self.subscribed;
        self.subscribed = true;
        match subscription {
            Subscription::Replace(names) => {
                // An empty list means "everything" only until the client names something.
                let wildcard = names.contains("*") || names.is_empty() && (first || self.wildcard);
                if wildcard != self.wildcard || names != self.names {
                    self.generation += 1;
                }
                self.wildcard = wildcard;
                self.names = names;
            }
            Subscription::Delta {
                subscribe,
                unsubscribe,
                initial,
            } => {
                if !(subscribe.is_empty() && unsubscribe.is_empty() && initial.is_empty()) {
                    self.generation += 1;
                }
                if first && subscribe.is_empty() || subscribe.contains("*") {
                    self.wildcard = true;
                }
                if unsubscribe.contains("*") {
                    self.wildcard = false;
                }
                self.names
                    .extend(subscribe.into_iter().filter(|n| n != "*"));
                if !(unsubscribe.is_empty() && initial.is_empty()) {
                    self.has_is_sent = false;
                }
                self.resumed |= first && !initial.is_empty();
                for name in &unsubscribe {
                    self.names.remove(name);
                    self.has.remove(name);
                }
                self.has.extend(initial);
            }
        }
    }

    /// What the subscription takes of `desired`, and its version (the view's
    /// `whole_version` when it takes all of it), reusing the last choice when
    /// neither the subscription nor `desired` changed since.
    pub(super) fn choose(
        &self,
        transition: Option<&Transition>,
        rtype: ResourceType,
        desired: &Resources,
        whole_version: Option<String>,
    ) -> (Resources, String) {
        if let Some(c) = self.remembered(desired) {
            return (Arc::clone(&c.chosen), c.version.clone());
        }
        if let Some(all) = self.still_covered(transition, rtype, desired, &whole_version) {
            return all;
        }
        let names = self.names.iter().map(|n| (n, ()));
        let covered =
            self.wildcard || join(desired.iter(), names, |_, d, n| d.is_none() || n.is_some());
        if covered {
            let version = whole_version.unwrap_or_else(|| set_version(desired));
            return (Arc::clone(desired), version);
        }
        let narrowed: BTreeMap<String, Arc<Entry>> = desired
            .iter()
            .filter(|(name, _)| self.names.contains(*name))
            .map(|(name, e)| (name.clone(), Arc::clone(e)))
            .collect();
        let version = set_version(&narrowed);
        (Arc::new(narrowed), version)
    }

    /// The last choice, if it was made from `desired` under this subscription.
    pub(super) fn remembered(&self, desired: &Resources) -> Option<&Choice> {
        self.choice
            .as_ref()
            .filter(|c| c.generation == self.generation && Arc::ptr_eq(&c.from, desired))
    }

    /// When the subscription took the whole previous set and the move to
    /// `desired` added no names, it takes the whole of `desired` too: known
    /// from the shared diff, without checking every name again.
    fn still_covered(
        &self,
        transition: Option<&Transition>,
        rtype: ResourceType,
        desired: &Resources,
        whole_version: &Option<String>,
    ) -> Option<(Resources, String)> {
        let previous = self.choice.as_ref()?;
        let took_all =
            previous.generation == self.generation && Arc::ptr_eq(&previous.chosen, &previous.from);
        let diff = transition?.diff(rtype, &previous.from, desired)?;
        (took_all && diff.added.is_empty()).then(|| {
            let version = whole_version
                .clone()
                .unwrap_or_else(|| set_version(desired));
            (Arc::clone(desired), version)
        })
    }
}

/// Walks two sequences sorted by name together, calling `f` with each
/// name and its item on either side; stops at the first `false`, which it returns.
/// One comparison per step, where looking each name up would take a dozen.
pub(crate) fn join<'l, 'r, A, B>(
    left: impl Iterator<Item = (&'l String, A)>,
    right: impl Iterator<Item = (&'r String, B)>,
    mut f: impl FnMut(&String, Option<A>, Option<B>) -> bool,
) -> bool {
    let (mut left, mut right) = (left.peekable(), right.peekable());
    loop {
        let order = match (left.peek(), right.peek()) {
            (None, None) => return true,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((l, _)), Some((r, _))) => l.cmp(r),
        };
        let step = match (
            order,
            left.next_if(|_| order.is_le()),
            right.next_if(|_| order.is_ge()),
        ) {
            (_, Some((name, a)), b) => f(name, Some(a), b.map(|(_, b)| b)),
            (_, None, Some((name, b))) => f(name, None, Some(b)),
            (_, None, None) => return true,
        };
        if !step {
            return false;
        }
    }
}

/// `base` with `top`'s entries put over it.
pub(super) fn overlay(
    base: &BTreeMap<String, Arc<Entry>>,
    top: &BTreeMap<String, Arc<Entry>>,
) -> Resources {
    let mut merged = base.clone();
    merged.extend(top.iter().map(|(k, v)| (k.clone(), Arc::clone(v))));
    Arc::new(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_walks_both_sides_in_name_order() {
        let left: BTreeMap<String, u8> = [("a".into(), 1), ("c".into(), 3)].into();
        let right: BTreeMap<String, u8> = [("b".into(), 2), ("c".into(), 4)].into();
        let mut seen = Vec::new();
        let all = join(left.iter(), right.iter(), |name, l, r| {
            seen.push((name.clone(), l.copied(), r.copied()));
            true
        });
        assert!(all);
        assert_eq!(
            seen,
            [
                ("a".into(), Some(1), None),
                ("b".into(), None, Some(2)),
                ("c".into(), Some(3), Some(4))
            ]
        );
        assert!(!join(left.iter(), right.iter(), |_, l, _| l.is_none()));
    }

    #[test]
    fn an_empty_sotw_list_is_wildcard_only_until_names_are_given() {
        let mut state = TypeState::default();
        state.subscribe(Subscription::Replace(BTreeSet::new()));
        assert!(state.wildcard);
        state.subscribe(Subscription::Replace(["a".to_string()].into()));
        assert!(!state.wildcard);
        state.subscribe(Subscription::Replace(BTreeSet::new()));
        assert!(!state.wildcard, "an empty list later unsubscribes from all");
    }
}
