fn main() -> std::process::ExitCode {
    gnt_network::instance_cli::main()
}
