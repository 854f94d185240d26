//! PC/SC benchmark (in progress).
fn main() {}
