//! Lookup-file benchmark (being written).

fn main() {}
