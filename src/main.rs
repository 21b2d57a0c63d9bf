//! The `scalebook` command; everything lives in the library's [`scalebook::cli`].

// mimalloc, never purging (the local executor sets `MIMALLOC_PURGE_DELAY=-1` for each run),
// keeps `gemm`'s per-product packing space mapped between steps: 8,472–8,680 tokens/s
// against glibc's 7,716–8,091 at 4/256/4, equal at 8/512/8 (release builds alternated three
// times: `scalebook bench train --layers 4 --d-model 256 --heads 4 --steps 6 --threads 2`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    scalebook::cli::main()
}
