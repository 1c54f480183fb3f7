//! The two reports — staleness (how much would fresher predictions help?) and backtest
//! (one model, optionally against a challenger) — as data, a plain-language verdict,
//! and one self-contained HTML file each (inline CSS and SVG, no script, no URLs).
//!
//! One file per job: `content` holds what a report says, `verdict` words it,
//! `format` writes its numbers, `figures` picks its charts and `html` lays it all out.

mod content;
mod figures;
mod format;
mod html;
#[cfg(test)]
mod sample;
mod verdict;

pub use content::{
    BacktestReport, ChallengerResult, Stage, StalenessCell, StalenessReport, baseline,
};
pub use html::{backtest_html, staleness_html};
pub use verdict::verdict;
