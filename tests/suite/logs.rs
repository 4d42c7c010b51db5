//! Log relations and fork winners as js-ceramic decides them (reference §4.4), including the
//! JavaScript comparison of CID bytes as strings.

use ceramic_audit::audit::logs::{js_cid_key, pick, relate, Commit, Relation, Rule, Winner};
use cid::Cid;
use multihash::Multihash;

use crate::common::composedb::tip;

fn c(seed: &str) -> Commit {
    Commit::signed(&tip(seed))
}

/// A dag-jose CID whose sha2-256 digest is all zeros but its last byte.
fn cid_ending(last: u8) -> String {
    let mut digest = [0u8; 32];
    digest[31] = last;
    let mh = Multihash::<64>::wrap(0x12, &digest).expect("multihash");
    Cid::new_v1(0x85, mh).to_string()
}

#[test]
fn a_prefix_is_behind_by_the_commits_it_misses() {
    let full = vec![c("g"), c("1"), c("2"), c("3")];
    assert_eq!(relate(&full[..1], &full), Relation::Behind { missing: 3 });
    assert_eq!(relate(&full, &full[..2]), Relation::Ahead { extra: 2 });
    assert_eq!(relate(&full, &full), Relation::Same);
    let fork = vec![c("g"), c("1"), c("x")];
    assert_eq!(relate(&full, &fork), Relation::Forked { common: 2 });
    assert_eq!(relate(&[c("g")], &[c("h")]), Relation::Forked { common: 0 });
}

#[test]
fn the_anchored_branch_then_the_earlier_anchor_then_the_longer_branch_wins() {
    let base = vec![c("g"), c("1")];
    let with = |tail: Vec<Commit>| [base.clone(), tail].concat();
    let anchored = with(vec![c("a"), Commit::anchor(&tip("t"), Some(100))]);
    let longer = with(vec![c("b"), c("c"), c("d")]);
    assert_eq!(
        pick(&anchored, &longer),
        Winner::First(Rule::OnlyOneAnchored)
    );
    assert_eq!(
        pick(&longer, &anchored),
        Winner::Second(Rule::OnlyOneAnchored)
    );

    let later = with(vec![Commit::anchor(&tip("u"), Some(200))]);
    assert_eq!(pick(&anchored, &later), Winner::First(Rule::EarlierAnchor));
    let unknown = with(vec![Commit::anchor(&tip("v"), None)]);
    assert!(matches!(pick(&anchored, &unknown), Winner::Unknown(_)));

    // Length counts up to and including the first anchor only.
    let same_time_short = with(vec![Commit::anchor(&tip("w"), Some(100)), c("e"), c("f")]);
    assert_eq!(
        pick(&anchored, &same_time_short),
        Winner::First(Rule::Longer),
        "2 commits to the first anchor beat 1, whatever follows it"
    );
    let shorter = with(vec![c("z")]);
    assert_eq!(pick(&shorter, &longer), Winner::Second(Rule::Longer));
}

#[test]
fn ties_go_to_the_lower_cid_as_javascript_compares_bytes() {
    let nine = cid_ending(9);
    let ten = cid_ending(10);
    // Byte order says 9 < 10; JavaScript compares "…,0,9" with "…,0,10" as strings.
    assert!(js_cid_key(&nine) > js_cid_key(&ten));
    let base = vec![c("g")];
    let a = [base.clone(), vec![Commit::signed(&nine)]].concat();
    let b = [base, vec![Commit::signed(&ten)]].concat();
    assert_eq!(
        pick(&a, &b),
        Winner::Second(Rule::LowerCid),
        "js keeps the …10 branch"
    );
    assert_eq!(pick(&b, &a), Winner::First(Rule::LowerCid));
    let bad = vec![c("g"), Commit::signed("not-a-cid")];
    assert!(matches!(pick(&a, &bad), Winner::Unknown(_)));
}
