//! pdfium for uploaded PDFs runs in child processes, `lectern-pdfium`, under their own
//! memory and CPU-time limits: a PDF that makes pdfium allocate without bound (form
//! XObjects that fan out), loop, or crash stops that process, and the job fails with the
//! reason, while the worker and the other jobs in it carry on. Within each child pdfium has
//! one owner; children run side by side.
//!
//! A child serves requests in turn: a JSON line in on its standard input, a JSON line out.
//! It keeps the documents it read last open, so the render jobs of a document do not each
//! pay for a process, pdfium's start and the parse of the document and its fonts. Idle
//! children wait in [`PdfiumProcess`]'s pool. A child is retired (it exits and is reaped)
//! after any error, after [`MAX_REQUESTS`], once its address space has peaked past half its
//! limit, and when the workers stop ([`PdfiumProcess::close`]), so its CPU time is counted
//! in the worker's. A PDF refused by a child that had served others is tried once more on a
//! fresh child, whose verdict stands. A child keeps the CPU priority of the thread that
//! started it ([`crate::engines::cpu`]), and holds the files of its open documents.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use pdfium_render::prelude::{PdfDocument, Pdfium};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::pdfium::Renders;
use crate::error::StageError;
use crate::model::workdir::Page;

/// Address space a child may map: pdfium, one page's bitmaps (at most
/// [`super::pdfium::MAX_RENDER_PIXELS`], four bytes each, twice) and its open documents.
pub const MEMORY_LIMIT_BYTES: u64 = 768 << 20;
/// CPU time one request may take.
pub const CPU_LIMIT_SECS: u64 = 300;
/// Requests a child serves before it is retired (pdfium's caches only grow).
pub const MAX_REQUESTS: usize = 200;
/// Documents a child keeps open.
const KEEP_OPEN: usize = 4;
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

/// A reply, and whether the child exits after it.
#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    reply: Reply,
    retire: bool,
}

/// Runs pdfium calls in child processes, keeping idle ones for the next call.
#[derive(Debug)]
pub struct PdfiumProcess {
    program: PathBuf,
    library: PathBuf,
    idle: Mutex<Vec<Server>>,
}

/// A running child, with its pipes.
#[derive(Debug)]
struct Server {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    /// The last line the child wrote to its standard error (a panic's message), kept by
    /// `errors`, the task that reads it.
    last_error: Arc<Mutex<String>>,
    errors: tokio::task::JoinHandle<()>,
}

/// Why a request got no reply.
enum Failed {
    TimedOut(StageError),
    Other(StageError),
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
        Ok(Self { program, library: library.to_path_buf(), idle: Mutex::new(Vec::new()) })
    }

    /// The page count; every page's dictionary is looked up, so a broken page tree fails here.
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

    /// Retires the idle children and waits for them to exit.
    pub async fn close(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().expect("pdfium pool lock"));
        for server in idle {
            server.retire().await;
        }
    }

    /// Runs one request on an idle child, or a new one; `pages` scales the wall-clock limit.
    async fn call(&self, request: Request, what: &str, pages: u32) -> Result<Reply, StageError> {
        let mut line =
            serde_json::to_string(&request).map_err(|e| StageError::transient("encode pdfium request", e))?;
        line.push('\n');
        let idle = self.take_idle();
        let outcome = match idle {
            // A child that served other PDFs may fail for their sake (memory they left in
            // use, a kill while it waited): the verdict on this one is a fresh child's.
            Some(server) => match self.exchange(server, &line, what, pages).await {
                Err(Failed::Other(StageError::BadInput(_))) => {
                    self.exchange(self.start().await?, &line, what, pages).await
                }
                outcome => outcome,
            },
            None => self.exchange(self.start().await?, &line, what, pages).await,
        };
        outcome.map_err(|(Failed::TimedOut(e) | Failed::Other(e))| e)
    }

    /// An idle child still running, if there is one (one that exited is reaped and left).
    fn take_idle(&self) -> Option<Server> {
        let mut idle = self.idle.lock().expect("pdfium pool lock");
        std::iter::from_fn(|| idle.pop())
            .find_map(|mut server| matches!(server.child.try_wait(), Ok(None)).then_some(server))
    }

    /// Sends `line` to `server` and reads its answer; the child goes back to the pool unless
    /// it is to retire.
    async fn exchange(&self, mut server: Server, line: &str, what: &str, pages: u32) -> Result<Reply, Failed> {
        let limit = std::time::Duration::from_secs(WALL_LIMIT_SECS * pages.max(1) as u64);
        let sent = async {
            server.input.write_all(line.as_bytes()).await?;
            server.input.flush().await?;
            let mut answer = String::new();
            server.output.read_line(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        };
        let answer = match tokio::time::timeout(limit, sent).await {
            Err(_) => {
                server.kill().await;
                let reason = format!("pdfium could not {what} within {} s", limit.as_secs());
                return Err(Failed::TimedOut(StageError::BadInput(reason)));
            }
            Ok(Ok(answer)) if !answer.is_empty() => answer,
            // No answer: the child is gone (a limit, a crash, a kill).
            Ok(_) => return Err(Failed::Other(server.stopped(what).await)),
        };
        let answer: Answer = match serde_json::from_str(&answer) {
            Ok(answer) => answer,
            Err(e) => {
                server.kill().await;
                return Err(Failed::Other(StageError::transient("read lectern-pdfium's reply", e)));
            }
        };
        if answer.retire {
            server.retire().await;
        } else {
            self.idle.lock().expect("pdfium pool lock").push(server);
        }
        match answer.reply {
            Reply::BadInput(reason) => Err(Failed::Other(StageError::BadInput(reason))),
            Reply::Transient(reason) => Err(Failed::Other(StageError::Transient(reason))),
            reply => Ok(reply),
        }
    }

    /// Starts a child from a CPU thread, so that it takes the workers' CPU priority.
    async fn start(&self) -> Result<Server, StageError> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg(&self.library)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C reaches the worker, which stops its
            // children in turn, not the children between two jobs.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = crate::engines::cpu::spawn_cpu(move || command.spawn())
            .await?
            .map_err(|e| StageError::transient("start lectern-pdfium", e))?;
        let (Some(input), Some(output), Some(errors)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(StageError::Transient("lectern-pdfium started without its pipes".into()));
        };
        let last_error = Arc::new(Mutex::new(String::new()));
        let last = last_error.clone();
        // Read to the end, whatever the bytes, so that the child never blocks on a full pipe.
        let errors = tokio::spawn(async move {
            let (mut errors, mut line) = (BufReader::new(errors), Vec::new());
            while errors.read_until(b'\n', &mut line).await.is_ok_and(|n| n > 0) {
                *last.lock().expect("stderr lock") = String::from_utf8_lossy(&line).trim_end().to_string();
                line.clear();
            }
        });
        Ok(Server { child, input, output: BufReader::new(output), last_error, errors })
    }
}

impl Server {
    /// Closes the child's input, on which it exits, and reaps it (killed if it lingers).
    async fn retire(self) {
        let Server { child, input, .. } = self;
        end(child, input).await;
    }

    async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// The reason a child stopped without answering: killed at a limit, or crashed.
    async fn stopped(self, what: &str) -> StageError {
        use std::os::unix::process::ExitStatusExt;
        let Server { child, input, last_error, errors, .. } = self;
        // A child that lost its reply pipe but lives on exits when its input closes.
        let status = match end(child, input).await {
            Some(Ok(status)) => status,
            Some(Err(e)) => return StageError::transient("wait for lectern-pdfium", e),
            None => {
                return StageError::Transient(format!("lectern-pdfium stopped answering while it tried to {what}"));
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), errors).await;
        let last = last_error.lock().expect("stderr lock").clone();
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
}

/// Closes a child's input, on which it exits, and waits for it a few seconds; `None` when
/// it lingered and was killed.
async fn end(mut child: Child, input: ChildStdin) -> Option<std::io::Result<std::process::ExitStatus>> {
    drop(input);
    match tokio::time::timeout(std::time::Duration::from_secs(5), child.wait()).await {
        Ok(status) => Some(status),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    }
}

fn unexpected(reply: Reply) -> StageError {
    StageError::Transient(format!("lectern-pdfium answered {reply:?}"))
}

/// The child's `main`: `lectern-pdfium LIBRARY`, requests on standard input. Replies go out
/// on what was standard output; pdfium's own output is sent to standard error.
pub fn child_main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let [_, library] = args.as_slice() else {
        eprintln!("usage: {PROGRAM} LIBRARY, requests on standard input (started by Lectern's workers)");
        return std::process::ExitCode::from(2);
    };
    let mut replies = match private_stdout() {
        Ok(file) => std::io::BufWriter::new(file),
        Err(e) => {
            eprintln!("set up the reply channel: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let setup = set_memory_limit()
        .and_then(|()| {
            Pdfium::bind_to_library(library)
                .map(Pdfium::new)
                .map_err(|e| StageError::Transient(format!("load pdfium from {}: {e}", Path::new(library).display())))
        })
        .map_err(|e| e.to_string());
    // pdfium and the documents are never closed: the process ends instead, and a pdfium that
    // failed inside (at the memory limit) was seen to hang on close.
    let pdfium = std::mem::ManuallyDrop::new(setup);
    let mut open = std::mem::ManuallyDrop::new(OpenDocuments::default());
    for (served, request) in std::io::stdin().lock().lines().enumerate() {
        let Ok(request) = request else { break };
        let reply = match pdfium
            .as_ref()
            .map_err(|e| StageError::Transient(e.clone()))
            .and_then(|pdfium| serve(pdfium, &mut open, &request))
        {
            Ok(reply) => reply,
            // pdfium answers an allocation that fails at the limit as a page it cannot load.
            Err(StageError::BadInput(reason)) if peak_address_space() >= MEMORY_LIMIT_BYTES / 10 * 9 => {
                Reply::BadInput(format!(
                    "{reason}: pdfium reached its memory limit of {} MiB on this PDF",
                    MEMORY_LIMIT_BYTES >> 20
                ))
            }
            Err(StageError::BadInput(reason)) => Reply::BadInput(reason),
            Err(other) => Reply::Transient(other.to_string()),
        };
        let retire = !matches!(reply, Reply::Count(_) | Reply::Pages(_))
            || served + 1 >= MAX_REQUESTS
            || peak_address_space() >= MEMORY_LIMIT_BYTES / 2;
        let sent = serde_json::to_writer(&mut replies, &Answer { reply, retire })
            .map_err(std::io::Error::from)
            .and_then(|()| replies.write_all(b"\n"))
            .and_then(|()| replies.flush());
        if let Err(e) = sent {
            eprintln!("send reply: {e}");
            return std::process::ExitCode::FAILURE;
        }
        if retire {
            break;
        }
    }
    std::process::ExitCode::SUCCESS
}

/// Answers one request.
fn serve<'a>(pdfium: &'a Pdfium, open: &mut OpenDocuments<'a>, request: &str) -> Result<Reply, StageError> {
    let request: Request = serde_json::from_str(request).map_err(|e| StageError::transient("read the request", e))?;
    limit_cpu_of_request()?;
    let (Request::Count { pdf } | Request::Render { pdf, .. }) = &request;
    let document = open.get(pdfium, pdf)?;
    Ok(match &request {
        Request::Count { .. } => Reply::Count(super::pdfium::page_count(document)?),
        Request::Render { pdf, pages_dir, first, last, renders } => {
            let mut form = super::pdfium::FormValues::new(pdfium, pdf);
            Reply::Pages(super::pdfium::render_pages(document, &mut form, pages_dir, *first..=*last, *renders)?)
        }
    })
}

/// The documents a child read last, most recent last; a file changed since it was opened
/// (another inode, size or modification time) is opened again.
#[derive(Default)]
struct OpenDocuments<'a> {
    documents: Vec<(FileKey, PdfDocument<'a>)>,
}

#[derive(PartialEq)]
struct FileKey {
    path: PathBuf,
    inode: (u64, u64),
    size: u64,
    modified: Option<std::time::SystemTime>,
}

impl<'a> OpenDocuments<'a> {
    fn get(&mut self, pdfium: &'a Pdfium, path: &Path) -> Result<&PdfDocument<'a>, StageError> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).map_err(|e| StageError::transient("read PDF", e))?;
        let key = FileKey {
            path: path.to_path_buf(),
            inode: (meta.dev(), meta.ino()),
            size: meta.len(),
            modified: meta.modified().ok(),
        };
        match self.documents.iter().position(|(k, _)| *k == key) {
            Some(i) => {
                let entry = self.documents.remove(i);
                self.documents.push(entry);
            }
            None => {
                let document = super::pdfium::open_pdf(pdfium, path)?;
                if self.documents.len() == KEEP_OPEN {
                    self.documents.remove(0);
                }
                self.documents.push((key, document));
            }
        }
        Ok(&self.documents.last().expect("just pushed").1)
    }
}

/// Moves standard output to a new descriptor for the replies and points descriptor 1 at
/// standard error, so nothing pdfium prints can garble a reply.
fn private_stdout() -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: dup and dup2 on this process's own standard descriptors; the new descriptor
    // is owned by the returned File alone.
    unsafe {
        let replies = libc::dup(1);
        if replies < 0 || libc::dup2(2, 1) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(std::fs::File::from_raw_fd(replies))
    }
}

fn set_memory_limit() -> Result<(), StageError> {
    let limit = libc::rlimit { rlim_cur: MEMORY_LIMIT_BYTES, rlim_max: MEMORY_LIMIT_BYTES };
    // SAFETY: setrlimit reads the struct it is given and changes only this process.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } != 0 {
        return Err(StageError::transient("set lectern-pdfium's memory limit", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Lets the coming request use [`CPU_LIMIT_SECS`] of CPU on top of what the child has used
/// (the kernel stops it with SIGXCPU past that).
fn limit_cpu_of_request() -> Result<(), StageError> {
    // SAFETY: getrusage/getrlimit write only the structs they are given; setrlimit reads it
    // and changes only this process.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 || libc::getrlimit(libc::RLIMIT_CPU, &mut limit) != 0 {
            return Err(StageError::transient("read lectern-pdfium's CPU use", std::io::Error::last_os_error()));
        }
        let used = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + 1) as u64;
        // Below a finite hard limit, so that the kernel's signal is SIGXCPU, not SIGKILL.
        limit.rlim_cur = (used + CPU_LIMIT_SECS).min(limit.rlim_max.saturating_sub(1));
        if libc::setrlimit(libc::RLIMIT_CPU, &limit) != 0 {
            return Err(StageError::transient("set lectern-pdfium's CPU limit", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// This process's peak address space, in bytes.
fn peak_address_space() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    peak_kib * 1024
}
