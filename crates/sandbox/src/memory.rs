//! This process's memory as the kernel counts it, for the benchmarks' figures and the generator's phase log.

/// Resident memory now and its peak so far (`VmRSS`, `VmHWM` of /proc/self/status), in KiB; `None` where
/// /proc is not there.
pub fn resident_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = |key: &str| {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    Some((kib("VmRSS:")?, kib("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn resident_memory_is_read_and_the_peak_is_at_least_the_current() {
        let (rss, peak) = super::resident_kib().expect("Linux has /proc/self/status");
        assert!(rss > 0 && peak >= rss, "rss {rss} KiB, peak {peak} KiB");
    }
}
