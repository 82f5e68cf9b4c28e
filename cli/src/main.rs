//! The `cafe-lab` binary: the CLI library's `run`.

fn main() -> std::process::ExitCode {
    cafe_cli::run()
}
