//! The station dashboard (ratatui). SKELETON: filled in by the dashboard work (issue 6).
