//! The host name that lock records carry, for operators reading them.

/// This machine's host name, for lock-owner records and messages: the
/// kernel's, then `/etc/hostname`, then `$HOSTNAME`, else `"unknown"`. It
/// is informational only; lock ownership is decided by random tokens.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}
