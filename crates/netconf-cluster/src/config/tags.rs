//! Ganeti's tag rules (`utils.ValidateTag`, `TaggableObject`).

use std::collections::BTreeSet;

use crate::error::GntError;

pub const MAX_TAG_LEN: usize = 128;
pub const MAX_TAGS_PER_OBJ: usize = 4096;

/// Checks one tag: non-empty, ≤ 128 characters of `[\w.+*/:@-]`.
pub fn validate(tag: &str) -> Result<(), GntError> {
    if tag.chars().count() > MAX_TAG_LEN {
        return Err(GntError::Tag("Tag too long (>128 characters)".into()));
    }
    if tag.is_empty() {
        return Err(GntError::Tag("Tags cannot be empty".into()));
    }
    let ok = |c: char| c.is_alphanumeric() || "_.+*/:@-".contains(c);
    if !tag.chars().all(ok) {
        return Err(GntError::Tag("Tag contains invalid characters".into()));
    }
    Ok(())
}

/// Adds `new` to `tags`; one invalid tag aborts the whole operation.
pub fn add(tags: &mut BTreeSet<String>, new: &[String]) -> Result<(), GntError> {
    for t in new {
        validate(t)?;
    }
    let mut merged = tags.clone();
    merged.extend(new.iter().cloned());
    if merged.len() > MAX_TAGS_PER_OBJ {
        return Err(GntError::Tag("Too many tags".into()));
    }
    *tags = merged;
    Ok(())
}

/// Removes `old` from `tags`; every tag must be present (Ganeti's `LUTagsDel`).
pub fn remove(tags: &mut BTreeSet<String>, old: &[String]) -> Result<(), GntError> {
    for t in old {
        validate(t)?;
    }
    let missing: BTreeSet<&String> = old.iter().filter(|t| !tags.contains(*t)).collect();
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|t| format!("'{t}'")).collect();
        return Err(GntError::noent(format!(
            "Tag(s) {} not found",
            names.join(", ")
        )));
    }
    for t in old {
        tags.remove(t);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ganeti_tag_rules() {
        validate("nfdhcpd").unwrap();
        validate("synnefo:network:0:protected").unwrap();
        validate("a.b+c*d/e@f-g_h").unwrap();
        assert_eq!(
            validate("").unwrap_err(),
            GntError::Tag("Tags cannot be empty".into())
        );
        assert_eq!(
            validate("a b").unwrap_err(),
            GntError::Tag("Tag contains invalid characters".into())
        );
        assert_eq!(
            validate(&"x".repeat(129)).unwrap_err(),
            GntError::Tag("Tag too long (>128 characters)".into())
        );
        let mut tags = BTreeSet::new();
        add(&mut tags, &["b".into(), "a".into()]).unwrap();
        assert!(add(&mut tags, &["ok".into(), "bad tag".into()]).is_err());
        assert_eq!(tags.len(), 2, "a bad tag aborts the whole add");
        assert_eq!(
            remove(&mut tags, &["a".into(), "zz".into()])
                .unwrap_err()
                .to_string(),
            "Failure: prerequisites not met for this operation:\nerror type: unknown_entity, error details:\nTag(s) 'zz' not found"
        );
        remove(&mut tags, &["a".into()]).unwrap();
        assert_eq!(tags.into_iter().collect::<Vec<_>>(), ["b"]);
    }
}
