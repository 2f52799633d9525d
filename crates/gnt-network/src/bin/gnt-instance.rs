#![forbid(unsafe_code)] // all unsafe lives in netconf-sys
fn main() -> std::process::ExitCode {
    gnt_network::instance_cli::main()
}
