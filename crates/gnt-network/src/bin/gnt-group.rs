fn main() -> std::process::ExitCode {
    gnt_network::group_cli::main()
}
