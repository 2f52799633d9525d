fn main() -> std::process::ExitCode {
    gnt_network::network_cli::main()
}
