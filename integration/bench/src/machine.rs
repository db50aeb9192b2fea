//! What the results were measured on: CPU model, cores, memory, kernel, and today's date.

use std::fs;

/// One line such as `AMD EPYC, 2 cores, 24 GiB, Linux 6.1.0 (Debian 12)`.
pub fn describe() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim())
        .to_owned();
    // The machine's cores, not this process's affinity (scenario binaries pin themselves).
    let cores = cpuinfo
        .lines()
        .filter(|line| line.starts_with("processor"))
        .count();
    let memory_gib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map_or(0, |kib| (kib + (1 << 19)) >> 20);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let os = fs::read_to_string("/etc/debian_version")
        .map(|version| format!(" (Debian {})", version.trim()))
        .unwrap_or_default();
    format!(
        "{model}, {cores} cores, {memory_gib} GiB, Linux {}{os}",
        kernel.trim()
    )
}

/// Today's date, UTC, as `YYYY-MM-DD`.
pub fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}
