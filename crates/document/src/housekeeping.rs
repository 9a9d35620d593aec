//! Periodic upkeep of files: each process on a remote store keeps its cache (the data
//! directory) under `Settings::cache_max_bytes`, and `serve` sweeps orphan files out of
//! the store every `Settings::sweep_every` (one sweeper per server, not per worker, so
//! a fleet of workers does not list the whole store every hour).

use std::sync::Arc;
use std::time::Duration;

use lectern_queue::shutdown::Shutdown;

use crate::context::Context;

/// Cached files used more recently than this stay, whatever the cache's size.
pub const CACHE_IDLE: Duration = Duration::from_secs(15 * 60);
/// How often the cache is measured.
const TRIM_EVERY: Duration = Duration::from_secs(60);
/// Orphans younger than this are left: their rows may be about to be written.
pub const ORPHAN_AGE: Duration = Duration::from_secs(60 * 60);

/// Trims this host's cache every minute until shutdown; returns at once on the local store.
pub async fn trim_cache(ctx: Arc<Context>, mut shutdown: Shutdown) {
    if ctx.blobs.remote().is_none() {
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TRIM_EVERY) => {}
            _ = shutdown.wait() => return,
        }
        match ctx.blobs.trim_cache(ctx.settings.cache_max_bytes, CACHE_IDLE).await {
            Ok(t) if t.files > 0 => tracing::info!(files = t.files, bytes = t.bytes, "cache trimmed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cache trim failed; trying again later"),
        }
    }
}

/// Sweeps orphan files every `Settings::sweep_every` until shutdown (never if unset).
pub async fn sweep_orphans(ctx: Arc<Context>, mut shutdown: Shutdown) {
    let Some(every) = ctx.settings.sweep_every else { return };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait() => return,
        }
        match crate::orphans::sweep(&ctx, ORPHAN_AGE).await {
            Ok(s) if s.objects > 0 => tracing::info!(objects = s.objects, bytes = s.bytes, "orphan files swept"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "orphan sweep failed; trying again later"),
        }
    }
}
