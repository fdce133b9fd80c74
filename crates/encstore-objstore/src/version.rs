//! [`Version`]s of stored objects: an ETag, plus the object version or
//! generation where the store has one.

use encstore_core::Version;
use object_store::UpdateVersion;

/// The separator between the ETag and the object version in a [`Version`].
const VERSION_SEP: &str = ";version=";

/// Encodes an ETag (and the object version) as a [`Version`]; `None`
/// without an ETag.
pub(crate) fn version_of(e_tag: Option<String>, version: Option<String>) -> Option<Version> {
    let e_tag = e_tag?;
    Some(match version {
        Some(v) => Version::new(format!("{e_tag}{VERSION_SEP}{v}")),
        None => Version::new(e_tag),
    })
}

/// Decodes a [`Version`] made by [`version_of`].
pub(crate) fn update_version(v: &Version) -> UpdateVersion {
    let s = v.as_str();
    // An ETag is a quoted string; split after its closing quote so that an
    // ETag containing the separator cannot confuse us.
    let split = match s.rfind('"') {
        Some(q) => s[q..]
            .find(VERSION_SEP)
            .map(|i| (&s[..q + i], &s[q + i + VERSION_SEP.len()..])),
        None => s.split_once(VERSION_SEP),
    };
    match split {
        Some((e, ver)) => UpdateVersion {
            e_tag: Some(e.to_owned()),
            version: Some(ver.to_owned()),
        },
        None => UpdateVersion {
            e_tag: Some(s.to_owned()),
            version: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip() {
        let v = version_of(Some("\"abc\"".into()), None).unwrap();
        assert_eq!(v.as_str(), "\"abc\"");
        let u = update_version(&v);
        assert_eq!(u.e_tag.as_deref(), Some("\"abc\""));
        assert_eq!(u.version, None);

        let v = version_of(Some("\"a;version=b\"".into()), Some("v1.2".into())).unwrap();
        let u = update_version(&v);
        assert_eq!(u.e_tag.as_deref(), Some("\"a;version=b\""));
        assert_eq!(u.version.as_deref(), Some("v1.2"));

        let v = version_of(Some("unquoted".into()), Some("7".into())).unwrap();
        let u = update_version(&v);
        assert_eq!(u.e_tag.as_deref(), Some("unquoted"));
        assert_eq!(u.version.as_deref(), Some("7"));

        assert!(version_of(None, None).is_none());
    }
}
