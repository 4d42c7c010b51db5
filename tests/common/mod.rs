//! Helpers shared by the test suites: seeded property-test runners and key-set generators.

pub mod ceramic_one;
pub mod cluster;
pub mod composedb;
pub mod http;
pub mod pg;
pub mod terminal;

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Seed of every property test, so a failure in CI replays locally: set
/// `CERAMIC_AUDIT_TEST_SEED` to the value printed in the failure message.
pub fn seed() -> u64 {
    std::env::var("CERAMIC_AUDIT_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00c3_7a1c_a0d1_7000)
}

/// A property-test runner with `cases` cases, seeded from [`seed`] and the test's name (so two
/// tests do not draw the same inputs), with no failure-persistence files.
pub fn runner(name: &str, cases: u32) -> TestRunner {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed().to_le_bytes());
    for (i, b) in name.bytes().enumerate() {
        bytes[8 + i % 24] ^= b;
    }
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

/// Runs a property and panics with the seed on failure.
pub fn check<S: proptest::strategy::Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), proptest::test_runner::TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    if let Err(e) = runner(name, cases).run(&strategy, test) {
        panic!(
            "property {name} failed (CERAMIC_AUDIT_TEST_SEED={}): {e}",
            seed()
        );
    }
}
