//! `divergences.csv`: one row per model, stream and node (columns in `reports/README.md`).

use super::Report;

pub const HEADER: [&str; 17] = [
    "model",
    "stream_id",
    "node",
    "kind",
    "tip",
    "majority_tip",
    "agreeing_nodes",
    "detail",
    "missing_commits",
    "ahead_node",
    "fork_point",
    "predicted_winner",
    "likely_cause",
    "repair_hint",
    "first_seen",
    "cycles",
    "content_cause",
];

pub fn render(report: &Report) -> std::io::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADER)?;
    for d in &report.divergences {
        w.write_record([
            d.model.as_str(),
            d.stream_id.as_str(),
            d.node.as_str(),
            d.kind.as_str(),
            d.tip.as_deref().unwrap_or(""),
            d.majority_tip.as_deref().unwrap_or(""),
            &d.agreeing_nodes.join(";"),
            d.detail.as_str(),
            &d.log
                .missing_commits
                .map(|n| n.to_string())
                .unwrap_or_default(),
            d.log.ahead_node.as_deref().unwrap_or(""),
            d.log.fork_point.as_deref().unwrap_or(""),
            d.log.predicted_winner.as_deref().unwrap_or(""),
            d.log.likely_cause.as_deref().unwrap_or(""),
            d.log.repair_hint.as_deref().unwrap_or(""),
            d.first_seen.as_deref().unwrap_or(""),
            &d.cycles.map(|c| c.to_string()).unwrap_or_default(),
            d.log.content_cause.map(|c| c.as_str()).unwrap_or(""),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error())
}
