//! The node's bridge as the nfdhcpd tests and the stories both build it.

use crate::cmd::ok;

/// Bridge `name` in namespace `netns`, up, holding the gateway addresses `gw4` and `gw6`
/// (with their prefix lengths). Its MAC is fixed: a bridge otherwise takes the lowest of
/// its ports' MACs, and would change it as TAPs join. No STP, no forwarding delay, no
/// multicast snooping and no DAD, so that it forwards (and its IPv6 gateway answers) at
/// once.
pub fn gateway_bridge(netns: &str, name: &str, gw4: &str, gw6: &str) {
    ok(&[
        "ip",
        "-n",
        netns,
        "link",
        "add",
        name,
        "address",
        "02:aa:00:00:00:01",
        "type",
        "bridge",
        "forward_delay",
        "0",
        "stp_state",
        "0",
        "mcast_snooping",
        "0",
    ]);
    ok(&[
        "ip",
        "netns",
        "exec",
        netns,
        "sysctl",
        "-qw",
        &format!("net.ipv6.conf.{name}.accept_dad=0"),
    ]);
    ok(&["ip", "-n", netns, "addr", "add", gw4, "dev", name]);
    ok(&["ip", "-n", netns, "addr", "add", gw6, "dev", name, "nodad"]);
    ok(&["ip", "-n", netns, "link", "set", name, "up"]);
}
