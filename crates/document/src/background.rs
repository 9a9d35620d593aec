//! Worker pools beside the HTTP server in one process (`lectern serve --workers`). The pools
//! get a runtime of their own, their CPU work a lower priority ([`crate::engines::cpu`]),
//! so the server's blocking threads (file I/O of uploads) are never ones a stage has
//! lowered.

use std::sync::Arc;

use crate::context::Context;
use crate::engines::cpu::{CpuPriority, set_cpu_priority};
use lectern_queue::engine::QueueSpec;
use lectern_queue::shutdown::Shutdown;

/// Starts worker pools for `specs` on their own runtime (`threads` async threads), their
/// CPU work at `priority`; the handle joins when `shutdown` has stopped them.
pub fn spawn_workers(
    ctx: Arc<Context>,
    specs: Vec<QueueSpec>,
    shutdown: Shutdown,
    threads: usize,
    priority: CpuPriority,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    set_cpu_priority(priority);
    std::thread::Builder::new().name("lectern-workers".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("lectern-worker")
            .max_blocking_threads(crate::engines::cpu::MAX_BLOCKING_THREADS)
            .enable_all()
            .build()
            .expect("build the worker runtime");
        let grace = ctx.settings.grace;
        runtime.block_on(crate::pipeline::run_workers(ctx, specs, shutdown));
        runtime.shutdown_timeout(grace);
    })
}
