//! The one shutdown mechanism: a [`CancellationToken`] cancelled by the first SIGINT (Ctrl-C)
//! or SIGTERM, handed down to the command, which stops at its next safe point. A second signal
//! ends the process at once with exit code 130: the user insists, and every file this program
//! writes is written atomically, so nothing is left half-written.

use tokio_util::sync::CancellationToken;

use super::EXIT_INTERRUPTED;

/// A token cancelled on the first signal. Must be called inside the runtime.
pub(super) fn cancel_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        signal().await;
        tracing::warn!("stopping at the next safe point (Ctrl-C or SIGTERM again to abort)");
        cancel.cancel();
        signal().await;
        std::process::exit(EXIT_INTERRUPTED);
    });
    token
}

/// Resolves on SIGINT or SIGTERM.
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
