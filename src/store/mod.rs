//! The durable store: SQLite on its own thread. SKELETON: filled in by the store work.
