//! Binding files: parsing never panics, and whatever parses renders and re-parses equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netconf::binding::Binding;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(b) = Binding::parse(text)
    {
        // Values with newlines or quotes cannot round-trip through KEY=value lines.
        if b.hostname.contains(['\n', '\r', '"', '\'']) || b.tags.contains(['\n', '\r', '"']) {
            return;
        }
        let again = Binding::parse(&b.render()).expect("rendered binding parses");
        assert_eq!(again, b);
    }
});
