//! nfdhcpd.toml: any input is either a valid configuration or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(cfg) = nfdhcpd::config::DaemonSettings::parse(text)
    {
        let _ = cfg.queues();
        let _ = nfdhcpd::rules::chain_rules(&cfg);
    }
});
