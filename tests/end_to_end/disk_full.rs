//! A full disk under the data directory (a small tmpfs; mounting needs root, as CI has):
//! uploads answer 507 with a reason and leave nothing behind, a job that runs out of space
//! records why and retries, what was done before is still served byte for byte, the worker
//! stays up, and once space is freed the work finishes.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A tmpfs of `size_mib` mounted on `dir` for the life of the value.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size_mib: u64) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let size = format!("size={size_mib}m");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "lectern-test"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs on {} (needs root)", dir.display());
        Self(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the filesystem is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0xa5u8; 1 << 20];
    loop {
        if let Err(e) = file.write_all(&block).and_then(|()| file.sync_data()) {
            assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
            return;
        }
    }
}

/// Shortens `path` by `bytes`, freeing that much space.
fn free(path: &Path, bytes: u64) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(bytes)).unwrap();
}

async fn upload(client: &reqwest::Client, base: &str, name: &str) -> reqwest::Response {
    let bytes = std::fs::read(common::fixture(name)).unwrap();
    let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_string());
    let form = reqwest::multipart::Form::new().part("file", part);
    client.post(format!("{base}/v1/documents")).multipart(form).send().await.unwrap()
}

async fn artifacts(client: &reqwest::Client, base: &str, id: &str) -> Vec<(String, Vec<u8>)> {
    let list: Value =
        client.get(format!("{base}/v1/documents/{id}/artifacts")).send().await.unwrap().json().await.unwrap();
    let mut out = Vec::new();
    for a in list["artifacts"].as_array().unwrap() {
        let resp = client.get(format!("{base}{}", a["url"].as_str().unwrap())).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        out.push((a["name"].as_str().unwrap().to_string(), resp.bytes().await.unwrap().to_vec()));
    }
    out
}

/// Temporary files of atomic writes and uploads left in `dir`.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    common::files_under(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            let ext = p.extension().map(|e| e.to_string_lossy().to_string()).unwrap_or_default();
            name.starts_with(".incoming-") || (ext.starts_with("tmp") && ext[3..].chars().all(|c| c.is_ascii_digit()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_cleanly_and_work_resumes_once_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _fs = Tmpfs::mount(&data, 48);
    let ctx = common::context(&data).await;
    let (base, client) = crate::http::serve(&ctx, &[]).await;
    let log = dir.path().join("worker.log");
    let mut worker = common::WorkerProcess::start(&data, &["--lease-secs", "10"], &[], &log);

    let resp = upload(&client, &base, "paper.pdf").await;
    assert_eq!(resp.status(), 202);
    let first = resp.json::<Value>().await.unwrap()["document_id"].as_str().unwrap().to_string();
    let docs = common::wait_finished(&ctx, std::slice::from_ref(&first), Duration::from_secs(300)).await;
    assert_eq!(docs[0].status.as_str(), "done", "{}", std::fs::read_to_string(&log).unwrap());
    let before = artifacts(&client, &base, &first).await;
    assert!(!before.is_empty());

    // No space at all: the upload is refused, with a reason and a time to come back.
    let ballast = data.join("ballast");
    fill(&ballast);
    let resp = upload(&client, &base, "scan.pdf").await;
    assert_eq!(resp.status(), 507);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("disk is full"), "{body}");
    assert!(leftovers(&data).is_empty(), "{:?}", leftovers(&data));

    // Room for the upload but not for its pages: the job records why and retries.
    free(&ballast, 1 << 20);
    let resp = upload(&client, &base, "scan.pdf").await;
    assert_eq!(resp.status(), 202, "{:?}", resp.text().await);
    let second = resp.json::<Value>().await.unwrap()["document_id"].as_str().unwrap().to_string();
    let start = Instant::now();
    let reason = loop {
        let jobs = ctx.store.jobs_for_document(&second).await.unwrap();
        if let Some(e) = jobs.iter().find_map(|j| j.error.clone().filter(|e| e.contains("No space left on device"))) {
            break e;
        }
        let doc = ctx.store.document(&second).await.unwrap().unwrap();
        assert!(!doc.is_finished(), "{doc:?}: finished on a full disk");
        assert!(start.elapsed() < Duration::from_secs(120), "no job ran out of space: {jobs:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("recorded on the job: {reason}");
    assert!(worker.child.try_wait().unwrap().is_none(), "the worker died on a full disk");
    assert_eq!(artifacts(&client, &base, &first).await, before, "what was done changed");
    let status = client.get(format!("{base}/v1/documents/{second}")).send().await.unwrap();
    assert_eq!(status.status(), 200);

    // Space back: the job's retries (or an operator's retry of a job out of attempts) finish it.
    std::fs::remove_file(&ballast).unwrap();
    let start = Instant::now();
    loop {
        let doc = ctx.store.document(&second).await.unwrap().unwrap();
        if doc.is_finished() {
            assert_eq!(doc.status.as_str(), "done", "{doc:?}");
            break;
        }
        for job in ctx.store.jobs_for_document(&second).await.unwrap() {
            if job.state == lectern_queue::storage::JobState::Dead {
                let resp = client.post(format!("{base}/v1/jobs/{}/retry", job.id)).send().await.unwrap();
                assert!(resp.status().is_success(), "{:?}", resp.text().await);
            }
        }
        assert!(start.elapsed() < Duration::from_secs(300), "{doc:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!artifacts(&client, &base, &second).await.is_empty());
    assert_eq!(artifacts(&client, &base, &first).await, before);
    assert!(leftovers(&data).is_empty(), "{:?}", leftovers(&data));
    assert_eq!(upload(&client, &base, "page.png").await.status(), 202);
    assert!(worker.child.try_wait().unwrap().is_none());
    common::assert_processed_once(&ctx, &second).await;
}
