//! The `scalebook` command; everything lives in the library's [`scalebook::cli`].

fn main() -> std::process::ExitCode {
    scalebook::cli::main()
}
