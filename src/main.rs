//! The `scalebook` command; everything lives in the library's [`scalebook::cli`].

// Training allocates and frees many short-lived tensors; mimalloc's thread-local free lists
// beat glibc malloc there (glibc tuning alone gave +25–35 %, DESIGN.md stack notes).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    scalebook::cli::main()
}
