//! The one progress display on stderr, for every long command (audit, repair, watch cycles,
//! backup): a bar of steps (models, actions, streams) with a detail line (the model, its round,
//! rows read) and an ETA, or a spinner where the number of steps is not known.
//!
//! It is drawn only when stderr is a terminal and `-q`/`--quiet` was not given: in a pipe, a
//! file or journald nothing is written (no `\r`, no ANSI escape), so logs and captured stderr
//! stay clean. Every method is a cheap no-op on a hidden display, so callers never test for it.
//!
//! ```no_run
//! use ceramic_audit::progress::Progress;
//! let progress = Progress::new("backup", false); // drawn iff stderr is a TTY
//! progress.stage("blocks: streams", Some(1_000));
//! for i in 0..1_000 {
//!     progress.detail(format!("stream {i}"));
//!     progress.inc(1);
//! }
//! progress.println("backup: blocks copied"); // above the bar; nothing when hidden
//! progress.finish();
//! ```
//!
//! [`Progress`] is a cheap handle (clones share one display), `Send + Sync`, usable from
//! blocking threads. Log lines written through [`LogWriter`] (the binary's tracing writer) clear
//! the bar first and redraw it after, so a warning never ends up glued to a half-drawn bar.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, WeakProgressBar};

/// How often the display is redrawn while nothing advances (the spinner turns, the ETA and
/// elapsed time move). Shorter costs CPU on a slow terminal for no information; much longer
/// makes a 30-second SQL statement look like a hang.
const TICK: Duration = Duration::from_millis(250);

/// The display drawn now, if any: [`LogWriter`] suspends it around each log line.
static DRAWN: Mutex<Option<WeakProgressBar>> = Mutex::new(None);

/// A progress display on stderr, or a hidden one (see the module doc).
#[derive(Clone, Debug)]
pub struct Progress {
    bar: ProgressBar,
    command: String,
}

impl Default for Progress {
    fn default() -> Self {
        Self::hidden()
    }
}

impl Progress {
    /// The display of `command` (`"audit"`, `"repair"`, `"watch"`, `"backup"`, shown first on
    /// the line): drawn when stderr is a terminal and `quiet` is false, hidden otherwise.
    pub fn new(command: &str, quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return Self {
                command: command.into(),
                ..Self::hidden()
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.enable_steady_tick(TICK);
        let progress = Self {
            bar,
            command: command.into(),
        };
        progress.stage("starting", None);
        *DRAWN.lock().unwrap_or_else(|e| e.into_inner()) = Some(progress.bar.downgrade());
        progress
    }

    /// A display that draws nothing (libraries, tests, `-q`).
    pub fn hidden() -> Self {
        Self {
            bar: ProgressBar::hidden(),
            command: String::new(),
        }
    }

    /// Whether anything is drawn.
    pub fn is_drawn(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Starts a stage named `what` ("models", "settle", "actions"…) of `total` steps (a bar with
    /// an ETA), or of an unknown number (`None`: a spinner with the elapsed time). The position
    /// and the detail are reset.
    pub fn stage(&self, what: &str, total: Option<u64>) {
        if !self.is_drawn() {
            return;
        }
        let template = match total {
            Some(_) => "{prefix} [{bar:24}] {pos}/{len} ETA {eta} · {wide_msg}",
            None => "{prefix} {spinner} {elapsed} · {wide_msg}",
        };
        // The templates are constants: a mistake in one shows in the tests, and falls back
        // to the default style rather than failing a command.
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.set_prefix(format!("{}: {what}", self.command));
        match total {
            Some(n) => self.bar.set_length(n),
            None => self.bar.unset_length(),
        }
        self.bar.set_position(0);
        self.bar.set_message("");
        self.bar.reset_eta();
    }

    /// Steps done in this stage.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// The step at work now (a model and its round, rows read).
    pub fn detail(&self, text: impl Into<String>) {
        if self.is_drawn() {
            self.bar.set_message(text.into());
        }
    }

    /// A line printed above the display (nothing when hidden).
    pub fn println(&self, line: impl AsRef<str>) {
        self.bar.println(line);
    }

    /// Clears the display for good: called when the command is done, before its summary.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Stderr for log lines (tracing's writer): a drawn display is cleared for the line and drawn
/// again after it.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogWriter;

impl LogWriter {
    fn drawn() -> Option<ProgressBar> {
        let guard = DRAWN.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .and_then(WeakProgressBar::upgrade)
            .filter(|b| !b.is_finished())
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match Self::drawn() {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    /// One suspension for the whole line (tracing writes each event with one `write_all`).
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match Self::drawn() {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf)),
            None => std::io::stderr().write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hidden display takes every call and draws nothing; `quiet` always hides it.
    #[test]
    fn hidden_takes_every_call() {
        for p in [Progress::hidden(), Progress::new("audit", true)] {
            assert!(!p.is_drawn());
            p.stage("models", Some(3));
            p.detail("model 1");
            p.inc(1);
            p.stage("settle", None);
            p.println("a line");
            p.finish();
        }
    }
}
