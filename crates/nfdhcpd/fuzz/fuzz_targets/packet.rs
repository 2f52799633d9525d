//! Any queued IP packet, from a bound guest (spoofed or not): classification and every
//! handler must return a verdict without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netconf::MacAddr;
use netconf::binding::Binding;
use nfdhcpd::config::DaemonSettings;
use nfdhcpd::packet;

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static SETUP: (Binding, DaemonSettings) = (
            Binding::parse("INDEV=prv0\nIP=198.51.100.10\nMAC=02:00:00:00:01:01\nHOSTNAME=vm0.example.test\nGATEWAY=198.51.100.1\nSUBNET=198.51.100.0/24\nGATEWAY6=2001:db8:5::1\nSUBNET6=2001:db8:5::/64\nMTU=1450\n").unwrap(),
            DaemonSettings::parse("[dhcp]\nnameservers = [\"198.51.100.53\"]\n[ipv6]\nnameservers = [\"2001:db8:5::53\"]\n").unwrap(),
        );
    }
    SETUP.with(|(b, cfg)| {
        let (hw, payload) = match data.split_first() {
            Some((0, rest)) => (Some(MacAddr([2, 0, 0, 0, 9, 9])), rest),
            Some((_, rest)) => (Some(b.mac), rest),
            None => (None, data),
        };
        let kind = packet::classify(payload);
        let _ = packet::handle(&kind, hw, b, cfg, MacAddr([2, 0xaa, 0, 0, 0, 1]));
        let _ = nfdhcpd::ndp::options(payload);
    });
});
