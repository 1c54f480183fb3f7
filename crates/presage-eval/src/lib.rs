//! Backtests and staleness reports: how much better would fresher predictions be? (Not yet written.)
