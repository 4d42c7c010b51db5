//! The monitoring files shipped in `deploy/`: the Prometheus alert rules pass `promtool check
//! rules` and their unit tests (`promtool test rules`), and the alerts and the Grafana dashboard
//! query only metrics that `watch` exports.

use std::path::Path;
use std::process::Command;

fn deploy() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is needed to check deploy/alerts.yml ({e}); scripts/setup.sh installs \
                 it (Debian package prometheus)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(checked.contains("SUCCESS: 5 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Every `ceramic_audit_*` name the alerts and the dashboard use is one `watch` exports.
#[test]
fn alerts_and_dashboard_use_only_exported_metrics() {
    let exporter =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/watch/metrics.rs"))
            .expect("metrics.rs");
    let names = |text: &str| -> Vec<String> {
        let mut found: Vec<String> = text
            .match_indices("ceramic_audit_")
            .map(|(i, _)| {
                text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            })
            .collect();
        found.sort();
        found.dedup();
        found
    };
    let exported = names(&exporter);
    let dashboard = std::fs::read_to_string(deploy().join("grafana-dashboard.json"))
        .expect("grafana-dashboard.json");
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let exprs: Vec<String> = json["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    assert!(exprs.len() >= 8, "{exprs:?}");
    let alerts = std::fs::read_to_string(deploy().join("alerts.yml")).expect("alerts.yml");
    for used in names(&alerts).into_iter().chain(names(&exprs.join("\n"))) {
        assert!(
            exported.contains(&used),
            "{used} is not exported: {exported:?}"
        );
    }
}
