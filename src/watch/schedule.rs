//! When the next cycle starts: `every` after the previous one started, plus a random jitter
//! (so that auditors of several clusters, or several replicas of one, do not hit the nodes in
//! step); a cycle that outlasts that starts the next one at once, never two at a time.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub every: Duration,
    /// Up to this share of `every` is added at random to each wait (0: none).
    pub jitter: f64,
}

/// What to do after a cycle that took `elapsed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Next {
    pub wait: Duration,
    /// How much longer than the interval the cycle ran (the next one starts at once).
    pub overran_by: Option<Duration>,
}

impl Schedule {
    /// `unit` is a random number in [0, 1).
    pub fn next(&self, elapsed: Duration, unit: f64) -> Next {
        let jitter = self
            .every
            .mul_f64(self.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0));
        let target = self.every + jitter;
        if elapsed >= self.every {
            Next {
                wait: Duration::ZERO,
                overran_by: Some(elapsed - self.every),
            }
        } else {
            Next {
                wait: target - elapsed,
                overran_by: None,
            }
        }
    }
}

/// A random number in [0, 1) from the standard library's per-process random hash keys (no
/// seedable generator is needed: jitter only has to differ between processes and cycles).
pub fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default(),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_the_rest_of_the_interval_plus_jitter_or_starts_at_once_after_an_overrun() {
        let s = Schedule {
            every: Duration::from_secs(60),
            jitter: 0.1,
        };
        assert_eq!(
            s.next(Duration::from_secs(20), 0.0),
            Next {
                wait: Duration::from_secs(40),
                overran_by: None
            }
        );
        assert_eq!(
            s.next(Duration::from_secs(20), 0.5).wait,
            Duration::from_secs(43)
        );
        assert_eq!(
            s.next(Duration::from_secs(75), 0.9),
            Next {
                wait: Duration::ZERO,
                overran_by: Some(Duration::from_secs(15))
            }
        );
        let u = random_unit();
        assert!((0.0..1.0).contains(&u));
    }
}
