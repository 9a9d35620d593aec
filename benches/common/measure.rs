//! What several bench binaries measure alike. Included with
//! `#[path = "common/measure.rs"] mod measure;` (not a bench target itself).

/// The median of `v` (the upper one of an even count).
#[allow(dead_code, reason = "not every bench that includes this module takes medians")]
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Peak resident memory of a process, from `/proc/<pid>/status` (`VmHWM`, kB → MiB).
#[allow(dead_code, reason = "not every bench that includes this module watches a process")]
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}
