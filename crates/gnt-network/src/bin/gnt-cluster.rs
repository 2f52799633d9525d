fn main() -> std::process::ExitCode {
    gnt_network::cluster_cli::main()
}
