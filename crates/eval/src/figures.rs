//! `lectern eval figures`: figure recall on corpus pages whose figures were counted by hand
//! (`benches/quality/figures.toml`). Each page goes through the render and layout stages
//! alone; the figures found are counted against the truth: recall is the share of true
//! figures matched (by count, per page), extra figures are found beyond the count.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use serde::Deserialize;

use lectern_document::config::Stage;
use lectern_document::context::Context;
use lectern_document::pipeline;
use lectern_document::stages::{Payload, ingest};

#[derive(Debug, Deserialize)]
struct Truth {
    page: Vec<TruthPage>,
}

#[derive(Debug, Deserialize)]
struct TruthPage {
    file: String,
    page: u32,
    figures: u32,
    #[serde(default)]
    note: String,
}

pub async fn run(ctx: Arc<Context>, truth: &Path, corpus: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(truth).with_context(|| format!("read {}", truth.display()))?;
    let truth: Truth = toml::from_str(&text).with_context(|| format!("parse {}", truth.display()))?;
    let mut documents = BTreeMap::new();
    println!("{:<44} {:>5} {:>8} {:>6} {:>7}  note", "file", "page", "expected", "found", "images");
    let (mut expected, mut matched, mut extra) = (0u32, 0u32, 0u32);
    for t in &truth.page {
        let id = match documents.get(&t.file) {
            Some(id) => String::clone(id),
            None => {
                let path = corpus.join(&t.file);
                let (id, _) = ingest::submit_file_to(&ctx, &path, "eval")
                    .await
                    .with_context(|| format!("submit {}", path.display()))?;
                pipeline::run_stage(&ctx, Stage::Ingest, &Payload::document(&id)).await?;
                documents.insert(t.file.clone(), id.clone());
                id
            }
        };
        let payload = Payload { pages: Some([t.page, t.page]), ..Payload::document(&id) };
        for stage in [Stage::Render, Stage::Layout] {
            pipeline::run_stage(&ctx, stage, &payload).await?;
        }
        let figures: Vec<_> =
            ctx.store.figures(&id).await?.into_iter().filter(|f| f.page == i64::from(t.page)).collect();
        let found = figures.len() as u32;
        // Embedded images get score 1 (exact boxes); model regions their detection score.
        let images = figures.iter().filter(|f| f.score >= 1.0).count();
        (expected, matched, extra) =
            (expected + t.figures, matched + found.min(t.figures), extra + found.saturating_sub(t.figures));
        println!("{:<44} {:>5} {:>8} {:>6} {:>7}  {}", t.file, t.page, t.figures, found, images, t.note);
    }
    println!(
        "figure recall: {matched}/{expected} ({:.0}%), {extra} extra figures on {} pages",
        100.0 * f64::from(matched) / f64::from(expected.max(1)),
        truth.page.len()
    );
    Ok(())
}
