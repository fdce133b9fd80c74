//! Lock-lease bounds, shared by every backend and by the tool.
//!
//! A lease is how long a lock outlives its holder's last renewal. Every
//! backend builder, [`MemoryStorage::with_lease`](crate::MemoryStorage::with_lease)
//! and the `ENCSTORE_LOCK_LEASE_SECS` environment variable go through
//! [`check_lease`], so a lease is always between [`MIN_LEASE`] and
//! [`MAX_LEASE`] and every expiry computed from it is representable: no
//! zero, negative, NaN or huge lease can reach the arithmetic, and no lock
//! is ever written with an expiry in the past.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Error;

/// The shortest lease: renewal runs every third of it, so below this the
/// renewal traffic alone would keep a backend busy. Leases this short are
/// for tests; production stores use tens of seconds.
pub const MIN_LEASE: Duration = Duration::from_millis(100);

/// The longest lease, 24 hours: a dead holder blocks its lock for at most
/// this long.
pub const MAX_LEASE: Duration = Duration::from_secs(24 * 60 * 60);

/// The environment variable that overrides the lock lease of the stores the
/// `encstore` tool opens, in (possibly fractional) seconds. Every process
/// sharing a store must use the same lease.
pub const ENV_LOCK_LEASE: &str = "ENCSTORE_LOCK_LEASE_SECS";

/// Why a lease was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// Shorter than [`MIN_LEASE`] (zero included).
    #[error("a lock lease of {0:?} is too short (the minimum is 100 ms)")]
    TooShort(Duration),
    /// Longer than [`MAX_LEASE`].
    #[error("a lock lease of {0:?} is too long (the maximum is 24 h)")]
    TooLong(Duration),
    /// Not a number of seconds (negative, NaN, infinite, or not a number).
    #[error("{value:?} is not a lock lease: give a number of seconds between 0.1 and 86400")]
    NotANumber {
        /// The text as given.
        value: String,
    },
}

/// Checks that `lease` lies within [`MIN_LEASE`]..=[`MAX_LEASE`].
///
/// # Errors
/// [`LeaseError::TooShort`] or [`LeaseError::TooLong`].
pub fn check_lease(lease: Duration) -> Result<Duration, LeaseError> {
    if lease < MIN_LEASE {
        Err(LeaseError::TooShort(lease))
    } else if lease > MAX_LEASE {
        Err(LeaseError::TooLong(lease))
    } else {
        Ok(lease)
    }
}

/// Parses a lease given in seconds, such as `"30"` or `"1.5"`, and checks
/// its bounds.
///
/// # Errors
/// [`LeaseError`] for anything that is not a finite number of seconds
/// within the bounds.
pub fn parse_lease_secs(value: &str) -> Result<Duration, LeaseError> {
    let not_a_number = || LeaseError::NotANumber {
        value: value.to_owned(),
    };
    let secs: f64 = value.trim().parse().map_err(|_| not_a_number())?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(not_a_number());
    }
    // Bounds first, so the conversion below cannot overflow.
    if secs > MAX_LEASE.as_secs_f64() {
        return Err(LeaseError::TooLong(MAX_LEASE + Duration::from_secs(1)));
    }
    check_lease(Duration::from_secs_f64(secs))
}

/// The lease from [`ENV_LOCK_LEASE`], if set and not blank.
///
/// # Errors
/// When the variable is set to something [`parse_lease_secs`] refuses.
pub fn lease_from_env() -> Result<Option<Duration>, LeaseError> {
    match std::env::var(ENV_LOCK_LEASE) {
        Ok(v) if !v.trim().is_empty() => parse_lease_secs(&v).map(Some),
        _ => Ok(None),
    }
}

/// The wall-clock expiry `lease` from `now`, in milliseconds since the Unix
/// epoch, with checked arithmetic.
///
/// # Errors
/// When the clock is before 1970 or the sum overflows (a clock set
/// absurdly far ahead): a backend error, never an expiry in the past.
pub fn expiry_unix_ms(now: SystemTime, lease: Duration) -> Result<u64, Error> {
    let bad_clock = || {
        Error::backend(
            "lock",
            "compute lease expiry",
            "the system clock is outside the range encstore supports",
        )
    };
    let since = now.duration_since(UNIX_EPOCH).map_err(|_| bad_clock())?;
    let at = since.checked_add(lease).ok_or_else(bad_clock)?;
    u64::try_from(at.as_millis()).map_err(|_| bad_clock())
}

impl From<LeaseError> for Error {
    fn from(e: LeaseError) -> Self {
        Error::backend("lock", "check lease", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced() {
        assert_eq!(
            check_lease(Duration::from_secs(30)),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(check_lease(MIN_LEASE), Ok(MIN_LEASE));
        assert_eq!(check_lease(MAX_LEASE), Ok(MAX_LEASE));
        assert!(matches!(
            check_lease(Duration::ZERO),
            Err(LeaseError::TooShort(_))
        ));
        assert!(matches!(
            check_lease(Duration::from_millis(99)),
            Err(LeaseError::TooShort(_))
        ));
        assert!(matches!(
            check_lease(MAX_LEASE + Duration::from_nanos(1)),
            Err(LeaseError::TooLong(_))
        ));
        assert!(matches!(
            check_lease(Duration::MAX),
            Err(LeaseError::TooLong(_))
        ));
    }

    #[test]
    fn parses_seconds_and_refuses_nonsense() {
        assert_eq!(parse_lease_secs("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_lease_secs(" 1.5 "), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_lease_secs("86400"), Ok(MAX_LEASE));
        for bad in ["", "x", "-1", "-0.5", "NaN", "nan", "inf", "-inf", "1e400"] {
            assert!(
                matches!(parse_lease_secs(bad), Err(LeaseError::NotANumber { .. })),
                "{bad:?}: {:?}",
                parse_lease_secs(bad)
            );
        }
        for short in ["0", "0.0", "0.05", "1e-9"] {
            assert!(
                matches!(parse_lease_secs(short), Err(LeaseError::TooShort(_))),
                "{short:?}"
            );
        }
        for long in ["86401", "1e18", "1e300"] {
            assert!(
                matches!(parse_lease_secs(long), Err(LeaseError::TooLong(_))),
                "{long:?}"
            );
        }
        let msg = parse_lease_secs("-1").unwrap_err().to_string();
        assert!(msg.contains("between 0.1 and 86400"), "{msg}");
    }

    #[test]
    fn expiry_is_checked() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(
            expiry_unix_ms(now, Duration::from_secs(2)).unwrap(),
            1_002_000
        );
        let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
        assert!(expiry_unix_ms(before_epoch, Duration::from_secs(1)).is_err());
    }
}
