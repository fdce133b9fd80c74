//! Streaming AEAD benchmark (written next).
fn main() {}
