//! Engine benchmarks. SKELETON.
fn main() {}
