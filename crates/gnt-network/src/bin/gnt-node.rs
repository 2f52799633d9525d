fn main() -> std::process::ExitCode {
    gnt_network::node_cli::main()
}
