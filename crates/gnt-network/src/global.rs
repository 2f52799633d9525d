//! The options every gnt-* command accepts (where the cluster lives, debugging), apart from
//! the rest of `common` so that completion, which needs them to find the store, does not
//! import the command plumbing that in turn names completion's candidates.

use std::path::PathBuf;

use clap::Args;
use netconf_cluster::config::etcd::EtcdUrl;
use netconf_cluster::config::{Location, Store, open_for_one_command};

/// Options every command accepts.
#[derive(Args, Clone, Debug)]
pub struct Global {
    /// The cluster configuration file.
    #[arg(long, global = true, env = "NETCONF_CONFIG", default_value = netconf_cluster::config::DEFAULT_CONFIG_PATH, value_name = "FILE")]
    pub config: PathBuf,
    /// The cluster store in etcd instead of the file: etcd://host:port[,host:port…][/prefix]
    /// (prefix /netconf when not given), or etcds://… over TLS (see netconf-store(7)).
    #[arg(long, global = true, env = "NETCONF_STORE", value_name = "URL", value_parser = parse_store_url)]
    pub store: Option<EtcdUrl>,
    /// Print debugging output.
    #[arg(short = 'd', long = "debug", global = true)]
    pub debug: bool,
}

fn parse_store_url(s: &str) -> Result<EtcdUrl, String> {
    s.parse()
}

impl Global {
    /// The store of a command: one transaction at most, then the process ends. `--store`
    /// (or `NETCONF_STORE`) picks etcd; without it, config.data at `--config`.
    pub fn store(&self) -> Box<dyn Store> {
        let at = match &self.store {
            Some(url) => Location::Etcd(url.clone()),
            None => Location::File(self.config.clone()),
        };
        open_for_one_command(&at, self.debug)
    }
}
