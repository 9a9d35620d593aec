//! CPU priority of the stages' work. Under `lectern serve --workers` the stages' CPU work
//! runs at a lower priority (a higher `nice`, or `SCHED_IDLE`), so uploads are answered
//! promptly while pages are rendered, OCR'd and embedded.
//!
//! Only CPU work is lowered: closures given to [`spawn_cpu`], pdfium's owner thread and the
//! embedding thread (and the ONNX Runtime threads they start, which inherit it). The
//! workers' async tasks keep normal priority, because they hold shared locks (the SQLite
//! writer) that the server waits for.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicI32, Ordering};

/// How a process's CPU work is scheduled beside the threads that serve requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuPriority {
    /// A nice value, 0–19 (0: unchanged).
    Nice(i32),
    /// Linux `SCHED_IDLE`: runs on CPU time no normal-priority thread wants, and a waking
    /// normal thread preempts it at once.
    Idle,
}

impl CpuPriority {
    const IDLE: i32 = -1;

    fn encode(self) -> i32 {
        match self {
            CpuPriority::Nice(n) => n.clamp(0, 19),
            CpuPriority::Idle => Self::IDLE,
        }
    }

    fn decode(v: i32) -> Self {
        if v == Self::IDLE { CpuPriority::Idle } else { CpuPriority::Nice(v) }
    }
}

impl FromStr for CpuPriority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "idle" {
            return Ok(CpuPriority::Idle);
        }
        match s.parse::<i32>() {
            Ok(n) if (0..=19).contains(&n) => Ok(CpuPriority::Nice(n)),
            _ => Err(format!("{s:?}: expected a nice value 0-19 or \"idle\"")),
        }
    }
}

impl fmt::Display for CpuPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuPriority::Nice(n) => write!(f, "nice {n}"),
            CpuPriority::Idle => f.write_str("idle"),
        }
    }
}

/// Blocking threads a runtime may start. LanceDB reads local files on blocking threads, in
/// bursts of many at once, and the pool keeps every thread it ever started as long as
/// work keeps arriving (idle ones are woken in turn): unbounded, it only grew under load
/// (soak: 200 threads after ten minutes). Stages' CPU work needs a handful.
pub const MAX_BLOCKING_THREADS: usize = 64;

/// This process's priority for CPU work (default: unchanged).
static CPU_PRIORITY: AtomicI32 = AtomicI32::new(0);

pub fn set_cpu_priority(priority: CpuPriority) {
    CPU_PRIORITY.store(priority.encode(), Ordering::Relaxed);
}

pub fn cpu_priority() -> CpuPriority {
    CpuPriority::decode(CPU_PRIORITY.load(Ordering::Relaxed))
}

/// `spawn_blocking` for a stage's CPU work: the thread runs at [`cpu_priority`] from then on.
pub fn spawn_cpu<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        lower_thread_priority(cpu_priority());
        f()
    })
}

/// The calling thread's nice value.
pub fn thread_nice() -> i32 {
    // SAFETY: a plain syscall on the calling thread's own id; errno is cleared first
    // because -1 is a valid answer.
    unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t)
    }
}

/// Whether the calling thread runs under `SCHED_IDLE`.
pub fn thread_is_idle() -> bool {
    // SAFETY: pid 0 is the calling thread.
    unsafe { libc::sched_getscheduler(0) == libc::SCHED_IDLE }
}

/// Lowers the calling thread's priority to `priority` unless it is already at most that;
/// the threads it starts inherit it. Lowering needs no privilege; a failure only costs
/// latency, so it is logged, not fatal.
pub fn lower_thread_priority(priority: CpuPriority) {
    let rc = match priority {
        CpuPriority::Idle if thread_is_idle() => return,
        CpuPriority::Idle => {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: pid 0 is the calling thread; `param` outlives the call.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) }
        }
        CpuPriority::Nice(nice) => {
            let nice = nice.min(19);
            if nice <= thread_nice() {
                return;
            }
            // SAFETY: as in `thread_nice`.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t, nice) }
        }
    };
    if rc != 0 {
        tracing::warn!(%priority, error = %std::io::Error::last_os_error(), "could not lower worker thread priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_is_lowered_for_this_thread_and_inherited_by_its_children() {
        let before = thread_nice();
        let (mine, child) = std::thread::spawn(|| {
            lower_thread_priority(CpuPriority::Nice(7));
            let child = std::thread::spawn(thread_nice).join().unwrap();
            (thread_nice(), child)
        })
        .join()
        .unwrap();
        assert_eq!(mine, before.max(7), "this thread's nice");
        assert_eq!(child, mine, "a thread it starts inherits it");
        assert_eq!(thread_nice(), before, "other threads keep theirs");
    }

    #[test]
    fn idle_scheduling_is_set_for_this_thread_and_inherited_by_its_children() {
        let (mine, child) = std::thread::spawn(|| {
            lower_thread_priority(CpuPriority::Idle);
            (thread_is_idle(), std::thread::spawn(thread_is_idle).join().unwrap())
        })
        .join()
        .unwrap();
        assert!(mine && child, "SCHED_IDLE: this thread {mine}, its child {child}");
        assert!(!thread_is_idle(), "other threads keep theirs");
    }

    #[test]
    fn priorities_parse_from_the_command_line() {
        assert_eq!("idle".parse(), Ok(CpuPriority::Idle));
        assert_eq!("10".parse(), Ok(CpuPriority::Nice(10)));
        assert!("20".parse::<CpuPriority>().is_err());
        assert!("-5".parse::<CpuPriority>().is_err());
    }
}
