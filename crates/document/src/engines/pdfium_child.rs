//! pdfium for uploaded PDFs runs in a child process, `lectern-pdfium`, one per call, under
//! its own memory and CPU-time limits: a PDF that makes pdfium allocate without bound (form
//! XObjects that fan out), loop, or crash stops that process, and the job fails with the
//! reason, while the worker and the other jobs in it carry on. The child inherits the
//! calling thread's CPU priority ([`crate::engines::cpu`]). Being separate processes,
//! children may run side by side; within each, pdfium has one owner.
//!
//! The request goes as JSON in the child's arguments, the reply comes back as JSON on its
//! standard output.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};

use super::pdfium::Renders;
use crate::error::StageError;
use crate::model::workdir::Page;

/// Address space the child may map: pdfium, one page's bitmaps (at most
/// [`super::pdfium::MAX_RENDER_PIXELS`], four bytes each, twice) and the document.
pub const MEMORY_LIMIT_BYTES: u64 = 768 << 20;
/// CPU time one call may take.
pub const CPU_LIMIT_SECS: u64 = 300;
/// Wall-clock time a count may take, and a render per page (pdfium may also hang idle).
const WALL_LIMIT_SECS: u64 = 60;
/// Where the child program is, when not beside the running executable.
const PROGRAM_VAR: &str = "LECTERN_PDFIUM_PROGRAM";
const PROGRAM: &str = "lectern-pdfium";

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Count { pdf: PathBuf },
    Render { pdf: PathBuf, pages_dir: PathBuf, first: u32, last: u32, renders: Renders },
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Count(u32),
    Pages(Vec<Page>),
    BadInput(String),
    Transient(String),
}

/// Runs pdfium calls in child processes.
#[derive(Debug, Clone)]
pub struct PdfiumProcess {
    program: PathBuf,
    library: PathBuf,
}

impl PdfiumProcess {
    /// Finds the child program: `LECTERN_PDFIUM_PROGRAM`, else beside the running
    /// executable or one directory up (test binaries live in `target/debug/deps`).
    pub fn new(library: &Path) -> Result<Self, StageError> {
        let program = match std::env::var_os(PROGRAM_VAR) {
            Some(program) => PathBuf::from(program),
            None => {
                let exe = std::env::current_exe()?;
                exe.ancestors().skip(1).take(2).map(|dir| dir.join(PROGRAM)).find(|p| p.is_file()).ok_or_else(|| {
                    StageError::Transient(format!(
                        "{PROGRAM} not found beside {} (build the workspace, or set {PROGRAM_VAR})",
                        exe.display()
                    ))
                })?
            }
        };
        Ok(Self { program, library: library.to_path_buf() })
    }

    /// The page count; every page is loaded once, so a broken page tree fails here.
    pub async fn page_count(&self, pdf: PathBuf) -> Result<u32, StageError> {
        match self.call(Request::Count { pdf }, "count the pages", 1).await? {
            Reply::Count(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// [`super::pdfium::render_pages`] on pages `range`, images into `pages_dir`.
    pub async fn render(
        &self,
        pdf: PathBuf,
        pages_dir: PathBuf,
        range: std::ops::RangeInclusive<u32>,
        renders: Renders,
    ) -> Result<Vec<Page>, StageError> {
        let (first, last) = (*range.start(), *range.end());
        let what = format!("render pages {first}–{last}");
        match self.call(Request::Render { pdf, pages_dir, first, last, renders }, &what, last + 1 - first).await? {
            Reply::Pages(pages) => Ok(pages),
            other => Err(unexpected(other)),
        }
    }

    /// Runs one request; `pages` scales the wall-clock limit.
    async fn call(&self, request: Request, what: &str, pages: u32) -> Result<Reply, StageError> {
        let request = serde_json::to_string(&request).map_err(|e| StageError::transient("encode pdfium request", e))?;
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg(&self.library)
            .arg(request)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Started from a CPU thread, so that the child inherits the workers' CPU priority.
        let child = crate::engines::cpu::spawn_cpu(move || command.spawn())
            .await?
            .map_err(|e| StageError::transient("start lectern-pdfium", e))?;
        let limit = std::time::Duration::from_secs(WALL_LIMIT_SECS * pages.max(1) as u64);
        // On timeout the child is dropped, which kills it.
        let output = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .map_err(|_| StageError::BadInput(format!("pdfium could not {what} within {} s", limit.as_secs())))??;
        if !output.status.success() {
            return Err(stopped(what, output.status, &output.stderr));
        }
        match serde_json::from_slice(&output.stdout) {
            Ok(Reply::BadInput(reason)) => Err(StageError::BadInput(reason)),
            Ok(Reply::Transient(reason)) => Err(StageError::Transient(reason)),
            Ok(reply) => Ok(reply),
            Err(e) => Err(StageError::transient("read lectern-pdfium's reply", e)),
        }
    }
}

fn unexpected(reply: Reply) -> StageError {
    StageError::Transient(format!("lectern-pdfium answered {reply:?}"))
}

/// The reason for a child that did not finish: killed at a limit or crashed.
fn stopped(what: &str, status: std::process::ExitStatus, stderr: &[u8]) -> StageError {
    use std::os::unix::process::ExitStatusExt;
    let last = String::from_utf8_lossy(stderr).lines().last().unwrap_or("").to_string();
    match status.signal() {
        // Killed from outside (the kernel's OOM killer, an operator): try again.
        Some(libc::SIGKILL) => StageError::Transient(format!("pdfium was killed while it tried to {what}")),
        Some(libc::SIGXCPU) => {
            StageError::BadInput(format!("pdfium could not {what} within its CPU-time limit of {CPU_LIMIT_SECS} s"))
        }
        Some(signal) => StageError::BadInput(format!(
            "pdfium stopped (signal {signal}) while it tried to {what}: the PDF needs more than its {} MiB memory limit, or breaks pdfium",
            MEMORY_LIMIT_BYTES >> 20
        )),
        None => StageError::BadInput(format!("pdfium could not {what} ({status}): {last}")),
    }
}

/// The child's `main`: `lectern-pdfium LIBRARY REQUEST_JSON`. Sets its limits, binds
/// pdfium, answers one request on standard output.
pub fn child_main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let [_, library, request] = args.as_slice() else {
        eprintln!("usage: {PROGRAM} LIBRARY REQUEST_JSON (started by Lectern's workers)");
        return std::process::ExitCode::from(2);
    };
    let reply = match set_limits().and_then(|()| serve(Path::new(library), request)) {
        Ok(reply) => reply,
        // pdfium answers an allocation that fails at the limit as a page it cannot load.
        Err(StageError::BadInput(reason)) if near_memory_limit() => Reply::BadInput(format!(
            "{reason}: pdfium reached its memory limit of {} MiB on this PDF",
            MEMORY_LIMIT_BYTES >> 20
        )),
        Err(StageError::BadInput(reason)) => Reply::BadInput(reason),
        Err(other) => Reply::Transient(other.to_string()),
    };
    match serde_json::to_string(&reply) {
        Ok(json) => {
            println!("{json}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("encode reply: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn set_limits() -> Result<(), StageError> {
    for (resource, limit) in [(libc::RLIMIT_AS, MEMORY_LIMIT_BYTES), (libc::RLIMIT_CPU, CPU_LIMIT_SECS)] {
        let limit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
        // SAFETY: setrlimit reads the struct it is given and changes only this process.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(StageError::transient("set lectern-pdfium's limits", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Whether this process's peak address space came within 10% of its limit.
fn near_memory_limit() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    peak_kib * 1024 >= MEMORY_LIMIT_BYTES / 10 * 9
}

/// Answers one request. pdfium and the document are never closed: the process ends next,
/// and a pdfium that failed inside (at the memory limit) was seen to hang on close.
fn serve(library: &Path, request: &std::ffi::OsStr) -> Result<Reply, StageError> {
    use std::mem::ManuallyDrop;
    let request: Request =
        serde_json::from_str(&request.to_string_lossy()).map_err(|e| StageError::transient("read the request", e))?;
    let pdfium = ManuallyDrop::new(
        pdfium_render::prelude::Pdfium::bind_to_library(library)
            .map(pdfium_render::prelude::Pdfium::new)
            .map_err(|e| StageError::Transient(format!("load pdfium from {}: {e}", library.display())))?,
    );
    let (Request::Count { pdf } | Request::Render { pdf, .. }) = &request;
    let document = ManuallyDrop::new(super::pdfium::open_pdf(&pdfium, pdf)?);
    Ok(match request {
        Request::Count { .. } => Reply::Count(super::pdfium::page_count(&document)?),
        Request::Render { pages_dir, first, last, renders, .. } => {
            Reply::Pages(super::pdfium::render_pages(&document, &pages_dir, first..=last, renders)?)
        }
    })
}
