//! Small descents rendered round by round, as rust-ceramic's recon tests do. The test hash below
//! prints the keys a range covers, so a range reads as `h(k1,k2)` — a failing snapshot shows
//! exactly which keys each store reported. Update with `UPDATE_EXPECT=1 cargo test`.

use std::hash::{DefaultHasher, Hash, Hasher};

use ceramic_audit::recon::{
    run_descent, AssociativeHash, DescentParams, Entry, Key, MemoryStore, Value,
};
use expect_test::{expect, Expect};

/// A multiset of entry names: "associative hash" whose sum is the list of keys it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Names(Vec<String>);

impl AssociativeHash for Names {
    const NAME: &'static str = "names";
    const WIRE_BYTES: usize = 16;

    fn zero() -> Self {
        Names(Vec::new())
    }

    fn digest(bytes: &[u8]) -> Self {
        // Entry::hash_input is `model \n stream \n tip \n digest`.
        let text = String::from_utf8_lossy(bytes);
        let parts: Vec<&str> = text.split('\n').collect();
        let name = match parts.as_slice() {
            [_, stream, "t", _] => stream.to_string(),
            [_, stream, tip, _] => format!("{stream}={tip}"),
            _ => text.to_string(),
        };
        Names(vec![name])
    }

    fn add(&self, other: &Self) -> Self {
        let mut all = self.0.clone();
        all.extend(other.0.iter().cloned());
        all.sort();
        Names(all)
    }

    fn sub(&self, other: &Self) -> Self {
        let mut all = self.0.clone();
        for name in &other.0 {
            if let Some(i) = all.iter().position(|n| n == name) {
                all.remove(i);
            }
        }
        Names(all)
    }

    fn to_bytes(&self) -> Vec<u8> {
        self.0.join(",").into_bytes()
    }

    fn short(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.0.hash(&mut h);
        h.finish()
    }

    fn render(&self) -> String {
        format!("h({})", self.0.join(","))
    }
}

/// Parses `"k1 k2=t2"`: keys under model `m`, tip `t` unless given.
fn store(spec: &str) -> MemoryStore<Names> {
    MemoryStore::new(spec.split_whitespace().map(|item| {
        let (key, tip) = item.split_once('=').unwrap_or((item, "t"));
        Entry::new(Key::new("m", key), Value::new(tip, 0))
    }))
}

fn descent(specs: &[&str], params: DescentParams, expected: Expect) {
    let mut stores: Vec<MemoryStore<Names>> = specs.iter().map(|s| store(s)).collect();
    let out = run_descent(
        &mut stores,
        DescentParams {
            trace: true,
            ..params
        },
    )
    .expect("memory stores cannot fail");
    let mut text = String::new();
    for (i, spec) in specs.iter().enumerate() {
        text.push_str(&format!("{}: [{}]\n", (b'a' + i as u8) as char, spec));
    }
    for line in &out.trace {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&format!(
        "differences: {}\ncost: rounds={} ranges={} fingerprints={} digests={} entries={}\n",
        out.differences
            .iter()
            .map(|d| d.key.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        out.cost.rounds,
        out.cost.ranges_compared,
        out.cost.fingerprints,
        out.cost.digests,
        out.cost.entries,
    ));
    expected.assert_eq(&text);
}

fn narrow() -> DescentParams {
    DescentParams {
        root_fanout: 2,
        fanout: 2,
        leaf_threshold: 1,
        leaf_digests: false,
        ..DescentParams::default()
    }
}

#[test]
fn equal_stores_settle_in_one_round() {
    descent(
        &["k1 k2 k3", "k1 k2 k3"],
        narrow(),
        expect![[r#"
            a: [k1 k2 k3]
            b: [k1 k2 k3]
            round 1
              summary [-inf, +inf) a=3:h(k1,k2,k3) b=3:h(k1,k2,k3) -> equal
            differences: 
            cost: rounds=1 ranges=1 fingerprints=2 digests=0 entries=0
        "#]],
    );
}

#[test]
fn one_missing_key_is_found_by_halving() {
    descent(
        &["k1 k2 k3", "k1 k3"],
        narrow(),
        expect![[r#"
            a: [k1 k2 k3]
            b: [k1 k3]
            round 1
              summary [-inf, +inf) a=3:h(k1,k2,k3) b=2:h(k1,k3) -> split 2 at m/k2
            round 2
              summary [-inf, m/k2) a=1:h(k1) b=1:h(k1) -> equal
              summary [m/k2, +inf) a=2:h(k2,k3) b=1:h(k3) -> split 2 at m/k2i
            round 3
              summary [m/k2, m/k2i) a=1:h(k2) b=0:h() -> leaf
              summary [m/k2i, +inf) a=1:h(k3) b=1:h(k3) -> equal
            round 4
              entries [m/k2, m/k2i) -> m/k2 [a:t b:-]
            differences: m/k2
            cost: rounds=4 ranges=5 fingerprints=10 digests=0 entries=1
        "#]],
    );
}

#[test]
fn three_stores_each_differing_with_leaf_digests() {
    let params = DescentParams {
        root_fanout: 4,
        fanout: 2,
        leaf_threshold: 2,
        leaf_digests: true,
        ..DescentParams::default()
    };
    descent(
        &[
            "k1 k2 k3 k4 k5 k6",
            "k1 k2=t9 k3 k4 k5 k6",
            "k1 k2 k3 k4 k6 k7",
        ],
        params,
        expect![[r#"
            a: [k1 k2 k3 k4 k5 k6]
            b: [k1 k2=t9 k3 k4 k5 k6]
            c: [k1 k2 k3 k4 k6 k7]
            round 1
              summary [-inf, +inf) a=6:h(k1,k2,k3,k4,k5,k6) b=6:h(k1,k2=t9,k3,k4,k5,k6) c=6:h(k1,k2,k3,k4,k6,k7) -> split 4 at m/k2, m/k4, m/k5
            round 2
              summary [-inf, m/k2) a=1:h(k1) b=1:h(k1) c=1:h(k1) -> equal
              summary [m/k2, m/k4) a=2:h(k2,k3) b=2:h(k2=t9,k3) c=2:h(k2,k3) -> leaf
              summary [m/k4, m/k5) a=1:h(k4) b=1:h(k4) c=1:h(k4) -> equal
              summary [m/k5, +inf) a=2:h(k5,k6) b=2:h(k5,k6) c=2:h(k6,k7) -> leaf
            round 3
              digests [m/k2, m/k4) a=2 b=2 c=2 -> fetch 2
              digests [m/k5, +inf) a=2 b=2 c=2 -> fetch 2
            round 4
              entries [m/k2, m/k4) -> m/k2 [a:t b:t9 c:t]
              entries [m/k5, +inf) -> m/k5 [a:t b:t c:-], m/k7 [a:- b:- c:t]
            differences: m/k2, m/k5, m/k7
            cost: rounds=4 ranges=5 fingerprints=15 digests=12 entries=6
        "#]],
    );
}

#[test]
fn an_empty_store_against_a_full_one() {
    descent(
        &["", "k1 k2 k3 k4"],
        narrow(),
        expect![[r#"
            a: []
            b: [k1 k2 k3 k4]
            round 1
              summary [-inf, +inf) a=0:h() b=4:h(k1,k2,k3,k4) -> split 2 at m/k2
            round 2
              summary [-inf, m/k2) a=0:h() b=1:h(k1) -> leaf
              summary [m/k2, +inf) a=0:h() b=3:h(k2,k3,k4) -> split 2 at m/k3
            round 3
              entries [-inf, m/k2) -> m/k1 [a:- b:t]
              summary [m/k2, m/k3) a=0:h() b=1:h(k2) -> leaf
              summary [m/k3, +inf) a=0:h() b=2:h(k3,k4) -> split 2 at m/k3i
            round 4
              entries [m/k2, m/k3) -> m/k2 [a:- b:t]
              summary [m/k3, m/k3i) a=0:h() b=1:h(k3) -> leaf
              summary [m/k3i, +inf) a=0:h() b=1:h(k4) -> leaf
            round 5
              entries [m/k3, m/k3i) -> m/k3 [a:- b:t]
              entries [m/k3i, +inf) -> m/k4 [a:- b:t]
            differences: m/k1, m/k2, m/k3, m/k4
            cost: rounds=5 ranges=7 fingerprints=14 digests=0 entries=4
        "#]],
    );
}

#[test]
fn a_bounds_only_root_splits_before_hashing() {
    let params = DescentParams {
        root_bounds_only: true,
        ..narrow()
    };
    descent(
        &["k1 k2 k3 k4", "k1 k2 k3=t2 k4"],
        params,
        expect![[r#"
        a: [k1 k2 k3 k4]
        b: [k1 k2 k3=t2 k4]
        round 1
          bounds [-inf, +inf) a=4 b=4 -> split 2
        round 2
          summary [-inf, m/k2) a=1:h(k1) b=1:h(k1) -> equal
          summary [m/k2, +inf) a=3:h(k2,k3,k4) b=3:h(k2,k3=t2,k4) -> split 2 at m/k3
        round 3
          summary [m/k2, m/k3) a=1:h(k2) b=1:h(k2) -> equal
          summary [m/k3, +inf) a=2:h(k3,k4) b=2:h(k3=t2,k4) -> split 2 at m/k3i
        round 4
          summary [m/k3, m/k3i) a=1:h(k3) b=1:h(k3=t2) -> leaf
          summary [m/k3i, +inf) a=1:h(k4) b=1:h(k4) -> equal
        round 5
          entries [m/k3, m/k3i) -> m/k3 [a:t b:t2]
        differences: m/k3
        cost: rounds=5 ranges=6 fingerprints=12 digests=0 entries=2
    "#]],
    );
}
