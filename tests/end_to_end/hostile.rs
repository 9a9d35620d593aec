//! The hostile-input corpus (`fixtures/hostile/`, written by `fixtures/make_hostile.py`;
//! `make test` runs it) through a real `lectern worker` process, beside good documents
//! and under hostile upload names: every file ends as its manifest says (`done`, or
//! `failed` with the expected reason), the worker stays up, the good documents are done,
//! no file lands outside the data directory and nothing of `/etc/passwd` is stored.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lectern_document::stages::ingest::{self, UploadOptions};

struct Case {
    file: String,
    expected: Option<String>,
}

/// The manifest's lines: file, what it probes, `done` or `failed: REASON`.
fn manifest(dir: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(dir.join("manifest.tsv")).expect("fixtures/hostile/manifest.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let expected = fields[2].strip_prefix("failed:").map(|r| r.trim().to_string());
            Case { file: fields[0].to_string(), expected }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_fail_cleanly_and_the_worker_carries_on() {
    let corpus = common::fixture("hostile");
    let cases = manifest(&corpus);
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ctx = common::context(&data).await;

    let good = ingest::submit_file(&ctx, &common::fixture("paper.pdf")).await.unwrap().0;
    let mut ids = vec![good.clone()];
    for case in &cases {
        let path = corpus.join(&case.file);
        assert!(path.exists(), "{} missing: run python3 fixtures/make_hostile.py", path.display());
        ids.push(ingest::submit_file(&ctx, &path).await.unwrap().0);
    }
    // Names as an HTTP client may send them: the bytes are a good page.
    let names =
        ["../../etc/passwd.pdf", "nul\u{0}byte.pdf", "two\nlines.pdf", "invoice\u{202e}fdp.exe", &"x".repeat(320)];
    let stored = ingest::store_file(&ctx.settings, &common::fixture("columns.pdf")).await.unwrap();
    let mut named = Vec::new();
    for name in names {
        let options = UploadOptions { collection: "names".into(), ..Default::default() };
        named.push(ingest::submit(ctx.store.as_ref(), &ctx.pipeline, &stored, name, &options).await.unwrap().0);
    }

    let log = dir.path().join("worker.log");
    let mut worker = common::WorkerProcess::start(&data, &["--lease-secs", "10"], &[], &log);
    let pid = worker.child.id();
    let all: Vec<String> = ids.iter().chain(&named).cloned().collect();
    let (start, mut peak) = (Instant::now(), 0);
    let docs = loop {
        peak = peak.max(common::tree_rss(pid));
        assert!(
            worker.child.try_wait().unwrap().is_none(),
            "the worker exited:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        let mut docs = Vec::new();
        for id in &all {
            docs.push(ctx.store.document(id).await.unwrap().unwrap());
        }
        if docs.iter().all(|d| d.is_finished()) {
            break docs;
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "not finished: {:#?}",
            docs.iter().filter(|d| !d.is_finished()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "{} documents in {:.0} s, worker and children peak RSS {} MiB",
        docs.len(),
        start.elapsed().as_secs_f32(),
        peak >> 20
    );

    assert_eq!(docs[0].status.as_str(), "done", "a good document beside the hostile ones: {:?}", docs[0]);
    let mut wrong = Vec::new();
    for (case, doc) in cases.iter().zip(&docs[1..]) {
        let error = doc.error.clone().unwrap_or_default();
        let ok = match &case.expected {
            None => doc.status.as_str() == "done",
            Some(reason) => doc.status.as_str() == "failed" && error.contains(reason.as_str()),
        };
        println!("{:<26} {:<7} {error}", case.file, doc.status.as_str());
        if !ok {
            wrong.push(format!("{}: expected {:?}, got {} {error:?}", case.file, case.expected, doc.status.as_str()));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    for doc in &docs[1 + cases.len()..] {
        assert_eq!(doc.status.as_str(), "done", "{doc:?}");
        let name = &doc.filename;
        assert!(!name.contains(['/', '\\', '\0', '\n', '\u{202e}']) && name.chars().count() <= 200, "{name:?}");
    }
    assert!(worker.child.try_wait().unwrap().is_none(), "the worker is still up");

    // Nothing written outside the data directory, nothing of /etc/passwd stored.
    for place in [dir.path(), &std::env::current_dir().unwrap(), Path::new("/tmp")] {
        assert!(!place.join("lectern-zip-slip.txt").exists(), "zip-slip escaped into {}", place.display());
    }
    let outside: Vec<PathBuf> =
        common::files_under(dir.path()).into_iter().filter(|p| !p.starts_with(&data) && *p != log).collect();
    assert!(outside.is_empty(), "{outside:?}");
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd.lines().next().unwrap().as_bytes();
    for file in common::files_under(&data) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(!bytes.windows(line.len()).any(|w| w == line), "/etc/passwd content in {}", file.display());
    }
}
