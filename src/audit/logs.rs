//! How two nodes' logs of one stream relate, and which branch of a fork js-ceramic keeps: the
//! comparison behind `lagging` and `forked` (issue 4). Pure: the logs come from the nodes' HTTP
//! API (`crate::api`), the verdicts go into the report.
//!
//! Lagging uses js-ceramic's own "is ahead" test (`StreamUtils.isStateSupersetOf`): one log
//! starts with all of the other. Forks are settled as `StateManipulator._pickLogToAccept` does
//! (reference `ceramic-interfaces.md` §4.4), comparing only the suffixes after the last common
//! commit: an anchored branch beats an unanchored one; of two anchored ones the earlier first
//! anchor wins; else the longer suffix (counted up to and including its first anchor); on a tie,
//! the branch whose last commit's CID is lower **as JavaScript compares two `Uint8Array`s with
//! `<`**: by their comma-joined decimal strings, not byte by byte.

use crate::ids::parse_cid;

/// One commit of a log, as the audit needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub cid: String,
    /// An anchor (time) commit, with its block timestamp (unix seconds) when known.
    pub anchor: Option<Option<u64>>,
}

impl Commit {
    pub fn signed(cid: &str) -> Self {
        Self {
            cid: cid.to_string(),
            anchor: None,
        }
    }

    pub fn anchor(cid: &str, timestamp: Option<u64>) -> Self {
        Self {
            cid: cid.to_string(),
            anchor: Some(timestamp),
        }
    }
}

/// A node's log as its HTTP API serves it (`state.log`), for [`relate`] and [`pick`].
pub fn from_api(log: &[crate::api::LogEntry]) -> Vec<Commit> {
    log.iter()
        .map(|e| Commit {
            cid: e.cid.clone(),
            anchor: (e.kind == 2).then_some(e.timestamp),
        })
        .collect()
}

/// How log `a` relates to log `b`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Relation {
    Same,
    /// `a` is a strict prefix of `b`: `a` misses `missing` commits `b` has.
    Behind {
        missing: usize,
    },
    /// `b` is a strict prefix of `a`.
    Ahead {
        extra: usize,
    },
    /// Neither contains the other; they share the first `common` commits (0: not even the
    /// genesis, i.e. not the same stream).
    Forked {
        common: usize,
    },
}

pub fn relate(a: &[Commit], b: &[Commit]) -> Relation {
    let common = a.iter().zip(b).take_while(|(x, y)| x.cid == y.cid).count();
    match (common == a.len(), common == b.len()) {
        (true, true) => Relation::Same,
        (true, false) => Relation::Behind {
            missing: b.len() - common,
        },
        (false, true) => Relation::Ahead {
            extra: a.len() - common,
        },
        (false, false) => Relation::Forked { common },
    }
}

/// Which branch js-ceramic keeps, and by which rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Winner {
    First(Rule),
    Second(Rule),
    /// The rule needs something the logs do not say (an anchor's timestamp, a CID that does not
    /// parse): no prediction.
    Unknown(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    OnlyOneAnchored,
    EarlierAnchor,
    Longer,
    LowerCid,
}

/// The branch js-ceramic would keep between two forks of one stream (full logs, same genesis).
pub fn pick(first: &[Commit], second: &[Commit]) -> Winner {
    let common = first
        .iter()
        .zip(second)
        .take_while(|(x, y)| x.cid == y.cid)
        .count();
    let (s1, s2) = (&first[common..], &second[common..]);
    let first_anchor = |s: &[Commit]| s.iter().position(|c| c.anchor.is_some());
    let (a1, a2) = (first_anchor(s1), first_anchor(s2));
    match (a1, a2) {
        (Some(_), None) => return Winner::First(Rule::OnlyOneAnchored),
        (None, Some(_)) => return Winner::Second(Rule::OnlyOneAnchored),
        (Some(i), Some(j)) => match (s1[i].anchor.flatten(), s2[j].anchor.flatten()) {
            (Some(t1), Some(t2)) if t1 < t2 => return Winner::First(Rule::EarlierAnchor),
            (Some(t1), Some(t2)) if t2 < t1 => return Winner::Second(Rule::EarlierAnchor),
            (Some(_), Some(_)) => {}
            _ => return Winner::Unknown("an anchor commit's timestamp is not known".into()),
        },
        (None, None) => {}
    }
    let counted = |s: &[Commit], anchor: Option<usize>| anchor.map_or(s.len(), |i| i + 1);
    let (l1, l2) = (counted(s1, a1), counted(s2, a2));
    if l1 != l2 {
        return if l1 > l2 {
            Winner::First(Rule::Longer)
        } else {
            Winner::Second(Rule::Longer)
        };
    }
    let (Some(last1), Some(last2)) = (first.last(), second.last()) else {
        return Winner::Unknown("an empty log".into());
    };
    match (js_cid_key(&last1.cid), js_cid_key(&last2.cid)) {
        // js: `log1[last].cid.bytes < log2[last].cid.bytes` picks log1; otherwise log2.
        (Some(k1), Some(k2)) if k1 < k2 => Winner::First(Rule::LowerCid),
        (Some(_), Some(_)) => Winner::Second(Rule::LowerCid),
        _ => Winner::Unknown(format!(
            "cannot compare CIDs {} and {}",
            last1.cid, last2.cid
        )),
    }
}

/// The string JavaScript compares when it applies `<` to a CID's bytes: `Uint8Array` converts to
/// its elements in decimal joined by commas.
pub fn js_cid_key(cid: &str) -> Option<String> {
    let bytes = parse_cid(cid).ok()?.to_bytes();
    Some(
        bytes
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(","),
    )
}
