//! Interface names, indexes and MAC addresses, looked up when needed (never cached by
//! ifindex alone: a TAP can be deleted and recreated with a new index at any time).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use netconf::MacAddr;

pub fn name_of(ifindex: u32) -> Option<String> {
    nix::net::if_::if_indextoname(ifindex)
        .ok()
        .and_then(|c| c.into_string().ok())
}

pub fn index_of(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok().filter(|&i| i != 0)
}

pub fn mac_of(name: &str) -> Option<MacAddr> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    s.trim().parse().ok()
}

/// MAC addresses of INDEV devices, re-read after a short time so that a changed bridge or
/// TAP address is picked up without a sysfs read per reply.
#[derive(Default)]
pub struct MacCache {
    entries: HashMap<String, (Option<MacAddr>, Instant)>,
}

const MAC_TTL: Duration = Duration::from_secs(2);

impl MacCache {
    pub fn get(&mut self, name: &str) -> Option<MacAddr> {
        let now = Instant::now();
        if let Some((mac, at)) = self.entries.get(name)
            && now.duration_since(*at) < MAC_TTL
        {
            return *mac;
        }
        let mac = mac_of(name);
        self.entries.insert(name.to_owned(), (mac, now));
        mac
    }
}

/// Interface names by index. Linux hands out indexes in increasing order per namespace, so
/// an index is not reused for another device; the short lifetime covers renames.
#[derive(Default)]
pub struct NameCache {
    entries: HashMap<u32, (String, Instant)>,
}

const NAME_TTL: Duration = Duration::from_secs(1);

impl NameCache {
    pub fn get(&mut self, ifindex: u32) -> Option<String> {
        let now = Instant::now();
        if let Some((name, at)) = self.entries.get(&ifindex)
            && now.duration_since(*at) < NAME_TTL
        {
            return Some(name.clone());
        }
        let name = name_of(ifindex)?;
        if self.entries.len() > 65_536 {
            self.entries.clear();
        }
        self.entries.insert(ifindex, (name.clone(), now));
        Some(name)
    }
}
