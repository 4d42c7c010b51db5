//! CSV renderings: `divergences.csv` (one row per model, stream and node; columns in
//! `reports/README.md`), and the helper every CSV of the project goes through: rows are
//! `#[derive(Serialize)]` structs, so the header is their field names, in their order.

use serde::Serialize;

use super::Report;

/// One row of `divergences.csv`.
#[derive(Default, Serialize)]
struct Row<'a> {
    model: &'a str,
    stream_id: &'a str,
    node: &'a str,
    kind: &'a str,
    tip: Option<&'a str>,
    majority_tip: Option<&'a str>,
    /// `;`-separated.
    agreeing_nodes: String,
    detail: &'a str,
    missing_commits: Option<u64>,
    ahead_node: Option<&'a str>,
    fork_point: Option<&'a str>,
    predicted_winner: Option<&'a str>,
    likely_cause: Option<&'a str>,
    repair_hint: Option<&'a str>,
    first_seen: Option<&'a str>,
    cycles: Option<u32>,
    content_cause: Option<&'a str>,
}

pub fn render(report: &Report) -> std::io::Result<Vec<u8>> {
    rows(report.divergences.iter().map(|d| Row {
        model: &d.model,
        stream_id: &d.stream_id,
        node: &d.node,
        kind: d.kind.as_str(),
        tip: d.tip.as_deref(),
        majority_tip: d.majority_tip.as_deref(),
        agreeing_nodes: d.agreeing_nodes.join(";"),
        detail: &d.detail,
        missing_commits: d.log.missing_commits,
        ahead_node: d.log.ahead_node.as_deref(),
        fork_point: d.log.fork_point.as_deref(),
        predicted_winner: d.log.predicted_winner.as_deref(),
        likely_cause: d.log.likely_cause.as_deref(),
        repair_hint: d.log.repair_hint.as_deref(),
        first_seen: d.first_seen.as_deref(),
        cycles: d.cycles,
        content_cause: d.log.content_cause.map(|c| c.as_str()),
    }))
}

/// A CSV document of `rows`: a header of `R`'s field names, then one line per row (`None` is
/// an empty field). The header is written even when there are no rows, so an empty report
/// still says what its columns are.
pub fn rows<R: Serialize + Default>(rows: impl IntoIterator<Item = R>) -> std::io::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut any = false;
    for row in rows {
        w.serialize(row).map_err(std::io::Error::other)?;
        any = true;
    }
    let mut bytes = w.into_inner().map_err(|e| e.into_error())?;
    if !any {
        // csv writes the header with the first record: write a blank one and keep the header.
        let mut w = csv::Writer::from_writer(Vec::new());
        w.serialize(R::default()).map_err(std::io::Error::other)?;
        let blank = w.into_inner().map_err(|e| e.into_error())?;
        let end = blank.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        bytes = blank[..end].to_vec();
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_report_still_has_its_header() {
        #[derive(Default, Serialize)]
        struct R<'a> {
            a: &'a str,
            b: Option<u64>,
        }
        assert_eq!(rows::<R>([]).expect("csv"), b"a,b\n");
        assert_eq!(
            rows([R { a: "x,y", b: None }, R { a: "z", b: Some(3) }]).expect("csv"),
            b"a,b\n\"x,y\",\nz,3\n"
        );
    }
}
