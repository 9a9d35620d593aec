//! Worker pools beside the HTTP server in one process (`lectern serve --workers`): the
//! stages' CPU work runs at a lower priority (a higher `nice`), so uploads are answered
//! promptly while pages are rendered, OCR'd and embedded.
//!
//! Only CPU work is niced: closures given to [`spawn_cpu`], pdfium's owner thread and the
//! embedding thread (and the ONNX Runtime threads they start, which inherit it). The
//! workers' async tasks keep normal priority, because they hold shared locks (the SQLite
//! writer) that the server waits for. The pools get a runtime of their own so the server's
//! blocking threads (file I/O of uploads) are never ones a stage has niced.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::context::Context;
use crate::engine::QueueSpec;
use crate::shutdown::Shutdown;

/// Nice value for this process's CPU work (0: unchanged).
static CPU_NICE: AtomicI32 = AtomicI32::new(0);

pub fn set_cpu_nice(nice: i32) {
    CPU_NICE.store(nice, Ordering::Relaxed);
}

pub fn cpu_nice() -> i32 {
    CPU_NICE.load(Ordering::Relaxed)
}

/// `spawn_blocking` for a stage's CPU work: the thread runs at [`cpu_nice`] from then on.
pub fn spawn_cpu<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        lower_thread_priority(cpu_nice());
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

/// Raises the calling thread's nice value to `nice` (at most 19) unless it is already at
/// least that. Lowering priority needs no privilege; a failure only costs latency, so it is
/// logged, not fatal.
pub fn lower_thread_priority(nice: i32) {
    let nice = nice.min(19);
    if nice <= thread_nice() {
        return;
    }
    // SAFETY: as in `thread_nice`.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::syscall(libc::SYS_gettid) as libc::id_t, nice) };
    if rc != 0 {
        tracing::warn!(nice, error = %std::io::Error::last_os_error(), "could not lower worker thread priority");
    }
}

/// Starts worker pools for `specs` on their own runtime (`threads` async threads), their
/// CPU work at `nice`; the handle joins when `shutdown` has stopped them.
pub fn spawn_workers(
    ctx: Arc<Context>,
    specs: Vec<QueueSpec>,
    shutdown: Shutdown,
    threads: usize,
    nice: i32,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    set_cpu_nice(nice);
    std::thread::Builder::new().name("lectern-workers".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("lectern-worker")
            .enable_all()
            .build()
            .expect("build the worker runtime");
        let grace = ctx.settings.grace;
        runtime.block_on(crate::pipeline::run_workers(ctx, specs, shutdown));
        runtime.shutdown_timeout(grace);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_is_lowered_for_this_thread_and_inherited_by_its_children() {
        let before = thread_nice();
        let (mine, child) = std::thread::spawn(|| {
            lower_thread_priority(7);
            let child = std::thread::spawn(thread_nice).join().unwrap();
            (thread_nice(), child)
        })
        .join()
        .unwrap();
        assert_eq!(mine, before.max(7), "this thread's nice");
        assert_eq!(child, mine, "a thread it starts inherits it");
        assert_eq!(thread_nice(), before, "other threads keep theirs");
    }
}
