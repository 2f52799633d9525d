//! Ganeti's "nice" (natural) sort: digit runs compare as numbers.

use std::cmp::Ordering;

fn chunks(s: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = s.as_bytes();
    for i in 1..=b.len() {
        if i == b.len() || b[i].is_ascii_digit() != b[start].is_ascii_digit() {
            out.push((b[start].is_ascii_digit(), &s[start..i]));
            start = i;
        }
    }
    out
}

pub fn nice_cmp(a: &str, b: &str) -> Ordering {
    cmp_chunks(&chunks(a), &chunks(b))
}

/// `names` in `nice_cmp`'s order, each split into chunks once instead of at every
/// comparison (a shell completion sorts 10,000 instance names at each TAB).
pub fn nice_sorted(names: Vec<String>) -> Vec<String> {
    let order: Vec<usize> = {
        let mut keyed: Vec<(Vec<(bool, &str)>, usize)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (chunks(n), i))
            .collect();
        keyed.sort_by(|a, b| cmp_chunks(&a.0, &b.0));
        keyed.into_iter().map(|(_, i)| i).collect()
    };
    let mut names: Vec<Option<String>> = names.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| names[i].take()).collect()
}

/// The keys of `objects` (key, name) in `nice_cmp`'s order of their names: how every
/// command lists all of a kind when none are named.
pub fn keys_by_name<'a>(objects: impl Iterator<Item = (&'a String, &'a str)>) -> Vec<String> {
    let mut all: Vec<(&String, &str)> = objects.collect();
    all.sort_by(|a, b| nice_cmp(a.1, b.1));
    all.into_iter().map(|(k, _)| k.clone()).collect()
}

fn cmp_chunks(ca: &[(bool, &str)], cb: &[(bool, &str)]) -> Ordering {
    for (x, y) in ca.iter().zip(cb) {
        let o = match (x.0, y.0) {
            (true, true) => {
                let (xa, ya) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
                xa.len().cmp(&ya.len()).then_with(|| xa.cmp(ya))
            }
            _ => x.1.cmp(y.1),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["net10", "net2", "a", "net1", "net1b"];
        v.sort_by(|a, b| nice_cmp(a, b));
        assert_eq!(v, ["a", "net1", "net1b", "net2", "net10"]);
        let owned = ["net10", "net2", "a", "net1", "net1b", "net02"].map(String::from);
        let mut by_cmp = owned.to_vec();
        by_cmp.sort_by(|a, b| nice_cmp(a, b));
        assert_eq!(nice_sorted(owned.to_vec()), by_cmp);
    }
}
