//! How `volley status --watch` shows a job as it changes: redrawn in place on a terminal,
//! a plain line every few seconds on a pipe or a log, one JSON object per refresh with
//! `--json`.

use crate::exit::Failure;
use crate::render::{StatusView, print_json};
use std::time::{Duration, Instant};

/// How often a plain line is printed when stdout is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// Width of the progress bar, in characters.
const BAR_WIDTH: usize = 40;

/// Where the refreshes go.
#[derive(Debug)]
pub enum Screen {
    /// A terminal: the view is redrawn over the previous one.
    Terminal {
        /// Lines printed last time, to move back over.
        drawn: usize,
    },
    /// A pipe or a file: one plain line every [`PLAIN_EVERY`], and the full view at the end.
    Plain {
        /// When the last line was printed.
        last: Option<Instant>,
    },
    /// One JSON object per refresh, a line each.
    Json,
}

impl Screen {
    /// The screen for stdout: JSON when asked, a redrawn view on a terminal, plain lines
    /// otherwise.
    pub fn for_stdout(json: bool) -> Self {
        use std::io::IsTerminal as _;
        if json {
            Self::Json
        } else if std::io::stdout().is_terminal() {
            Self::Terminal { drawn: 0 }
        } else {
            Self::Plain { last: None }
        }
    }

    /// Shows one refresh.
    ///
    /// # Errors
    /// A [`Failure`] when the view cannot be serialized (`--json`).
    pub fn show(&mut self, view: &StatusView) -> Result<(), Failure> {
        match self {
            Self::Terminal { drawn } => {
                let text = format!("{}\n{}", bar(view), view.text());
                let erase = if *drawn > 0 {
                    // Up over the last drawing, then clear to the end of the screen.
                    format!("\x1b[{drawn}A\x1b[J")
                } else {
                    String::new()
                };
                *drawn = text.lines().count();
                volley_core::out!("{erase}{text}");
            }
            Self::Plain { last } => {
                if last.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) {
                    *last = Some(Instant::now());
                    volley_core::outln!("{}", view.line());
                }
            }
            Self::Json => print_json(view)?,
        }
        Ok(())
    }

    /// Shows the final view, which stays printed: the last drawing on a terminal, the full
    /// view after the plain lines, the last object in JSON.
    ///
    /// # Errors
    /// As [`Screen::show`].
    pub fn finish(&mut self, view: &StatusView) -> Result<(), Failure> {
        match self {
            Self::Terminal { .. } | Self::Json => self.show(view),
            Self::Plain { .. } => {
                volley_core::out!("{}", view.text());
                Ok(())
            }
        }
    }
}

/// `[##########..............................]  1234 / 5000 (24.7%)`.
fn bar(view: &StatusView) -> String {
    let filled = view
        .percent()
        .map_or(0, |p| ((p / 100.0) * BAR_WIDTH as f64).round() as usize)
        .min(BAR_WIDTH);
    format!(
        "[{}{}]  {}",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        view.progress()
    )
}
