//! A store that fails or answers nonsense gives a typed error naming the store — never a panic.

use std::collections::BTreeSet;

use ceramic_audit::recon::{
    run_descent, Answer, Descent, DescentError, DescentParams, Entry, HashCount, Key, Md5Lanes,
    MemoryStore, Query, Range, RangeStore, RunError, Summary, Value,
};

fn entry(stream: &str, tip: &str) -> Entry {
    Entry::new(Key::new("m", stream), Value::new(tip, 0))
}

/// A store that serves a memory store until its `fail_at`-th batch, then errors — a node whose
/// database dies mid-audit.
struct Dying {
    inner: MemoryStore<Md5Lanes>,
    batches: usize,
    fail_at: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("connection reset after {0} batches")]
struct Gone(usize);

impl RangeStore for Dying {
    type Hash = Md5Lanes;
    type Error = Gone;

    fn summary(&mut self, range: &Range, bounds: bool) -> Result<Summary<Md5Lanes>, Gone> {
        Ok(self
            .inner
            .summary(range, bounds)
            .unwrap_or_else(|e| match e {}))
    }
    fn digests(&mut self, range: &Range) -> Result<Vec<u64>, Gone> {
        Ok(self.inner.digests(range).unwrap_or_else(|e| match e {}))
    }
    fn entries(&mut self, range: &Range, only: Option<&BTreeSet<u64>>) -> Result<Vec<Entry>, Gone> {
        Ok(self
            .inner
            .entries(range, only)
            .unwrap_or_else(|e| match e {}))
    }
    fn answer(&mut self, batch: &[Query]) -> Result<Vec<Answer<Md5Lanes>>, Gone> {
        self.batches += 1;
        if self.batches >= self.fail_at {
            return Err(Gone(self.batches));
        }
        self.inner.answer(batch).map_err(|e| match e {})
    }
}

#[test]
fn a_store_dying_mid_descent_is_reported_with_its_index() {
    let many: Vec<Entry> = (0..500).map(|i| entry(&format!("s{i:04}"), "t")).collect();
    let fewer: Vec<Entry> = many.iter().skip(3).cloned().collect();
    let mut stores = vec![
        Dying {
            inner: MemoryStore::new(many),
            batches: 0,
            fail_at: usize::MAX,
        },
        Dying {
            inner: MemoryStore::new(fewer),
            batches: 0,
            fail_at: 2,
        },
    ];
    match run_descent(&mut stores, DescentParams::default()) {
        Err(RunError::Store { store: 1, source }) => assert_eq!(source.0, 2),
        other => panic!("expected store 1 to fail, got {other:?}"),
    }
}

fn two_store_descent() -> Descent<Md5Lanes> {
    Descent::new(2, DescentParams::default()).expect("valid")
}

fn summary(count: u64) -> Answer<Md5Lanes> {
    Answer::Summary(Summary {
        fingerprint: HashCount {
            hash: Md5Lanes([count, 1]),
            count,
        },
        bounds: None,
    })
}

#[test]
fn malformed_answers_are_typed_errors() {
    let mut d = two_store_descent();
    assert_eq!(
        d.feed(vec![vec![summary(1)]]),
        Err(DescentError::AnswerSets {
            expected: 2,
            got: 1
        })
    );
    assert_eq!(
        d.feed(vec![vec![summary(1)], vec![]]),
        Err(DescentError::AnswerCount {
            store: 1,
            expected: 1,
            got: 0
        })
    );
    assert_eq!(
        d.feed(vec![vec![summary(1)], vec![Answer::Digests(vec![1])]]),
        Err(DescentError::AnswerKind {
            store: 1,
            index: 0,
            expected: "summary"
        })
    );
    // A first/last key outside the sub-range asked about is rejected before it is used.
    let mut sub = Descent::<Md5Lanes>::new(2, DescentParams::default()).expect("valid");
    sub.feed(vec![vec![summary(500)], vec![summary(400)]])
        .expect("root");
    let batch = sub.queries().expect("a split");
    let Query::Summary { range, .. } = &batch[1] else {
        panic!("summaries: {batch:?}")
    };
    let outside = Key::new("m", "zzzz-past-every-split");
    assert!(!range.contains(&outside));
    let mut answers: Vec<Vec<Answer<Md5Lanes>>> = (0..2)
        .map(|_| batch.iter().map(|_| summary(1)).collect())
        .collect();
    answers[0][1] = Answer::Summary(Summary {
        fingerprint: HashCount {
            hash: Md5Lanes::default(),
            count: 1,
        },
        bounds: Some((outside.clone(), outside)),
    });
    assert!(matches!(
        sub.feed(answers),
        Err(DescentError::OutOfRange { store: 0, .. })
    ));

    // Nothing was consumed by the rejected answers: a correct answer still works.
    d.feed(vec![vec![summary(1)], vec![summary(2)]])
        .expect("valid answers");
    let batch = d.queries().expect("a leaf round follows");
    assert!(matches!(batch[0], Query::Digests { .. }));
}

#[test]
fn entries_outside_the_range_or_twice_are_rejected() {
    let params = DescentParams {
        leaf_digests: false,
        ..DescentParams::default()
    };
    let mut d = Descent::<Md5Lanes>::new(2, params.clone()).expect("valid");
    d.feed(vec![vec![summary(1)], vec![summary(0)]])
        .expect("root");
    let batch = d.queries().expect("entries round");
    let Query::Entries { range, .. } = &batch[0] else {
        panic!("entries query: {batch:?}")
    };
    assert_eq!(range, &Range::full());
    let twice = vec![entry("s1", "t"), entry("s1", "t")];
    assert_eq!(
        d.feed(vec![
            vec![Answer::Entries(twice)],
            vec![Answer::Entries(vec![])]
        ]),
        Err(DescentError::DuplicateKey {
            store: 0,
            key: "m/s1".into()
        })
    );

    // A store answering about keys outside the range it was asked about.
    let mut d = Descent::<Md5Lanes>::new(
        2,
        DescentParams {
            root_fanout: 2,
            fanout: 2,
            leaf_threshold: 1,
            ..params
        },
    )
    .expect("valid");
    let bounded = |count, first: &str, last: &str| {
        Answer::Summary(Summary {
            fingerprint: HashCount {
                hash: Md5Lanes([count, 9]),
                count,
            },
            bounds: Some((Key::new("m", first), Key::new("m", last))),
        })
    };
    d.feed(vec![vec![bounded(2, "a", "z")], vec![bounded(3, "a", "z")]])
        .expect("root");
    let batch = d.queries().expect("children");
    assert_eq!(batch.len(), 2);
    let answers: Vec<Answer<Md5Lanes>> = vec![summary(1), summary(1)];
    d.feed(vec![answers.clone(), vec![summary(0), summary(0)]])
        .expect("children");
    let batch = d.queries().expect("leaves");
    let Query::Entries { range, .. } = &batch[0] else {
        panic!("entries: {batch:?}")
    };
    let outside = Entry::new(Key::new("n", "x"), Value::new("t", 0));
    assert!(!range.contains(&outside.key));
    let mut list = vec![
        vec![Answer::Entries(vec![outside])],
        vec![Answer::Entries(vec![])],
    ];
    for l in &mut list {
        l.resize(batch.len(), Answer::Entries(vec![]));
    }
    assert!(matches!(
        d.feed(list),
        Err(DescentError::OutOfRange { store: 0, .. })
    ));
    // The rejected answer changed nothing: the same round still takes a correct answer.
    assert_eq!(d.queries(), Some(batch.clone()));
    let empty = vec![Answer::Entries(vec![]); batch.len()];
    d.feed(vec![empty.clone(), empty])
        .expect("a correct answer after a rejected one");
}

#[test]
fn bad_parameters_and_store_counts_are_refused() {
    assert_eq!(
        Descent::<Md5Lanes>::new(1, DescentParams::default()).err(),
        Some(DescentError::StoreCount(1))
    );
    assert_eq!(
        Descent::<Md5Lanes>::new(17, DescentParams::default()).err(),
        Some(DescentError::StoreCount(17))
    );
    let zero_leaf = DescentParams {
        leaf_threshold: 0,
        ..DescentParams::default()
    };
    assert!(matches!(
        Descent::<Md5Lanes>::new(2, zero_leaf),
        Err(DescentError::Params(_))
    ));
    let narrow = DescentParams {
        fanout: 1,
        ..DescentParams::default()
    };
    assert!(matches!(
        Descent::<Md5Lanes>::new(2, narrow),
        Err(DescentError::Params(_))
    ));
}

#[test]
fn a_finished_descent_takes_no_more_answers() {
    let mut d = two_store_descent();
    d.feed(vec![vec![summary(0)], vec![summary(0)]])
        .expect("equal");
    assert!(d.is_finished());
    assert_eq!(d.feed(vec![vec![], vec![]]), Err(DescentError::Finished));
}

/// All stores answer the same ranges, so what one store sends back does not grow with N.
#[test]
fn bytes_per_store_do_not_grow_with_the_number_of_stores() {
    let base: Vec<Entry> = (0..5000).map(|i| entry(&format!("k{i:05}"), "t")).collect();
    let mut odd = base.clone();
    odd[1234].value.tip = "other".into();
    let per_store_max = |n: usize| {
        let mut stores: Vec<MemoryStore<Md5Lanes>> = (0..n)
            .map(|i| MemoryStore::new(if i == 0 { odd.clone() } else { base.clone() }))
            .collect();
        let out = run_descent(&mut stores, DescentParams::default()).expect("memory");
        assert_eq!(out.differences.len(), 1);
        out.cost
            .bytes_received_per_store
            .into_iter()
            .max()
            .unwrap_or(0)
    };
    let two = per_store_max(2);
    for n in [3, 8, 16] {
        assert_eq!(per_store_max(n), two, "{n} stores");
    }
}
