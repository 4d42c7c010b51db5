//! Thin binary: parse arguments, run the command, map the result to an exit code.

use std::io::IsTerminal;

use clap::Parser;

use ceramic_audit::cli::{self, Cli, EXIT_INCOMPLETE};

fn main() {
    ceramic_audit::tls::install_default_provider();
    // Logs go to stderr (stdout carries the summary or the report); `CERAMIC_AUDIT_LOG` takes
    // a tracing filter such as `info` or `ceramic_audit=debug`.
    let filter = tracing_subscriber::EnvFilter::try_from_env("CERAMIC_AUDIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // `CERAMIC_AUDIT_LOG_FORMAT=json`: one JSON object per line on stdout, where container log
    // collectors expect structured lines (meant for `watch`, whose stdout carries nothing else
    // but its last line). Colours only on a terminal: escapes would litter `docker logs`.
    match std::env::var("CERAMIC_AUDIT_LOG_FORMAT").as_deref() {
        Ok("json") => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stdout)
            .init(),
        Ok("text") | Err(std::env::VarError::NotPresent) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            // Through the progress display: a log line clears the bar and it is redrawn after.
            .with_writer(ceramic_audit::progress::LogWriter)
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
        Ok(other) => {
            eprintln!("ceramic-audit: CERAMIC_AUDIT_LOG_FORMAT={other:?}: expected text or json");
            std::process::exit(EXIT_INCOMPLETE);
        }
        Err(e) => {
            eprintln!("ceramic-audit: CERAMIC_AUDIT_LOG_FORMAT: {e}");
            std::process::exit(EXIT_INCOMPLETE);
        }
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" to clap but succeed; usage errors exit 2.
            let _ = e.print();
            std::process::exit(if e.use_stderr() { EXIT_INCOMPLETE } else { 0 });
        }
    };
    // Not `stdout().lock()`: a lock held for the whole run would block every log line written
    // from a worker thread with CERAMIC_AUDIT_LOG_FORMAT=json (stdout), the signal task's among
    // them, so SIGTERM would never stop `watch` (seen in the container test: killed, exit 137).
    let mut stdout = std::io::stdout();
    let code = match cli::run(cli, &mut stdout) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("ceramic-audit: {}", failure.message);
            failure.code
        }
    };
    std::process::exit(code);
}
