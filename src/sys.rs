//! Facts about the machine a run trained on: peak memory, host name, CPU model.

/// The `KEY: <n> kB` value of a Linux `/proc` file, in bytes.
fn proc_kb(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_kb("/proc/self/status", "VmHWM:")
}

/// Memory the kernel could give this process now (Linux `MemAvailable`), if known.
pub fn available_memory_bytes() -> Option<u64> {
    proc_kb("/proc/meminfo", "MemAvailable:")
}

/// The host name, or `unknown`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The CPU model name from `/proc/cpuinfo`, or `unknown`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Use `threads` worker threads for candle's kernels and rayon: candle reads
/// `RAYON_NUM_THREADS` when it first needs it.
///
/// # Safety
/// Sets an environment variable, which is undefined behaviour while another thread may read
/// the environment: call it first thing in `main`, before any other thread exists.
pub unsafe fn set_threads(threads: usize) {
    let threads = threads.max(1);
    // SAFETY: the caller promises no other thread exists yet.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    // Ignore "already initialised": tests may configure the pool more than once.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global();
}

/// Threads to use by default: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_linux_facts() {
        assert!(super::peak_rss_bytes().unwrap() > 1 << 20);
        assert_ne!(super::host_name(), "");
    }
}
