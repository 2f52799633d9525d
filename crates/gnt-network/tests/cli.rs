//! Integration tests of the gnt-network, gnt-group, gnt-node and gnt-instance binaries:
//! each test gets its own temporary cluster (config.data + hooks directory) and runs the
//! debug binaries as a user would.

#[path = "cli/harness.rs"]
mod harness;

#[path = "cli/concurrency.rs"]
mod concurrency;
#[path = "cli/crash.rs"]
mod crash;
#[path = "cli/errors.rs"]
mod errors;
#[path = "cli/hooks.rs"]
mod hooks;
#[path = "cli/instance_fields.rs"]
mod instance_fields;
#[path = "cli/instance_nics.rs"]
mod instance_nics;
#[path = "cli/json.rs"]
mod json;
#[path = "cli/l2.rs"]
mod l2;
#[path = "cli/names.rs"]
mod names;
#[path = "cli/ports.rs"]
mod ports;
#[path = "cli/ranges.rs"]
mod ranges;
#[path = "cli/seed.rs"]
mod seed;
#[path = "cli/verify.rs"]
mod verify;
