//! The sizes of the hash-based policies' lookup structures, legacy
//! (`ring_hash_lb_config`, `maglev_lb_config`) and typed (RingHash, Maglev)
//! alike, as the fields are named the same: a ring's minimum may not exceed
//! its maximum, and a maglev table's size must be prime for its
//! permutations to fill it.

use crate::check::clusters::{with, wrapped_u64};
use crate::check::{Finding, Rule};
use crate::config::resource::PathStep;
use prost_reflect::DynamicMessage;

/// A ring hash whose minimum size is above its maximum.
pub static RING_HASH_MIN_ABOVE_MAX: Rule = Rule {
    id: "lb-ring-hash-min-above-max",
    summary: "ring hash minimum_ring_size is above maximum_ring_size",
    explanation: "The ring is built with at least minimum_ring_size and at most maximum_ring_size entries, so \
Envoy refuses a minimum above the maximum. Remember that an unset minimum is 1024: a maximum below 1024 needs \
an explicit smaller minimum.",
    envoy: "source/extensions/load_balancing_policies/ring_hash/ring_hash_lb.cc",
    ..Rule::ERROR
};

/// A maglev table whose size is not prime.
pub static MAGLEV_NOT_PRIME: Rule = Rule {
    id: "lb-maglev-table-size-not-prime",
    summary: "the maglev table_size is not a prime number",
    explanation: "Maglev builds its lookup table from per-host permutations that only cover every slot when \
the table size is prime, and Envoy refuses other sizes. Use a prime such as the default 65537, or 5000011 for \
the largest table. Do not use 1: Envoy's prime test lets it through, and then Envoy crashes building the table.",
    envoy: "source/extensions/load_balancing_policies/maglev/maglev_lb.cc",
    ..Rule::ERROR
};

/// RingHash or legacy RingHashLbConfig (same field names).
pub(super) fn ring_sizes(config: &DynamicMessage, path: &[PathStep], out: &mut Vec<Finding>) {
    const DEFAULT_MIN: u64 = 1024;
    const DEFAULT_MAX: u64 = 8_388_608;
    let min = wrapped_u64(config, "minimum_ring_size");
    let max = wrapped_u64(config, "maximum_ring_size");
    let min_value = min.as_ref().map_or(DEFAULT_MIN, |(_, v)| *v);
    let max_value = max.as_ref().map_or(DEFAULT_MAX, |(_, v)| *v);
    if min_value <= max_value {
        return;
    }
    let Some((f, _)) = min.or(max) else {
        return;
    };
    out.push(Finding::at(
        &RING_HASH_MIN_ABOVE_MAX,
        with(path, [PathStep::Field(f)]),
        format!(
            "ring hash minimum_ring_size ({min_value}) is above maximum_ring_size ({max_value})"
        ),
    ));
}

/// Envoy's Primes::isPrime: 1, 2 and 3 count as prime.
fn is_prime(n: u64) -> bool {
    if n == 0 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let mut d = 3u64;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// Maglev or legacy MaglevLbConfig.
pub(super) fn table_size(config: &DynamicMessage, path: &[PathStep], out: &mut Vec<Finding>) {
    let Some((f, size)) = wrapped_u64(config, "table_size") else {
        return;
    };
    let text = if size == 1 {
        "maglev table_size 1 crashes Envoy when the cluster has hosts (use a prime such as 65537)"
            .to_string()
    } else if !is_prime(size) {
        let next = (size..).find(|n| is_prime(*n)).unwrap_or(65537);
        format!("maglev table_size {size} is not prime (try {next})")
    } else {
        return;
    };
    out.push(Finding::at(
        &MAGLEV_NOT_PRIME,
        with(path, [PathStep::Field(f)]),
        text,
    ));
}

#[cfg(test)]
mod tests {
    use super::is_prime;

    #[test]
    fn primes_as_envoy_counts_them() {
        assert!(!is_prime(0));
        assert!(is_prime(1) && is_prime(2) && is_prime(3));
        assert!(!is_prime(1000) && is_prime(1009));
        assert!(!is_prime(65536) && is_prime(65537));
        assert!(is_prime(5_000_011) && !is_prime(25));
    }
}
