//! Stage 7, generate: study material from the chunks ([`crate::generate`]), locally and
//! with no LLM: a cheat sheet (.docx), a quiz (.pdf with the answer key on its own page, and
//! quiz.json) and flashcards (.json with SM-2 state).

use super::Payload;
use crate::config::GenerateConfig;
use crate::context::Context;
use crate::error::StageError;
use crate::generate::{cheatsheet, draft, flashcards, llm, quiz, text};
use crate::model::chunk::Chunk;
use crate::model::workdir::{Page, write_atomic};
use crate::text::blocks;
use lectern_queue::storage::{Artifact, Figure, Flashcard};
use std::path::Path;

/// Everything generated for one document.
pub struct StudySet {
    pub blocks: Vec<cheatsheet::Block>,
    pub quiz: quiz::Quiz,
    pub cards: Vec<flashcards::Card>,
}

/// Builds the material, embeds its sentences and key terms, and ranks them.
pub async fn material(ctx: &Context, chunks: &[Chunk], pages: &[Page]) -> Result<text::Material, StageError> {
    let freq = ctx.word_frequencies().await?;
    let mut material = text::Material::from_chunks(chunks, pages, &freq);
    let texts: Vec<String> = material
        .sentences
        .iter()
        .map(|s| s.text.clone())
        .chain(material.terms.iter().map(|t| t.text.clone()))
        .collect();
    let vectors = if texts.is_empty() { Vec::new() } else { ctx.embedder().await?.embed(texts).await? };
    let terms = vectors[material.sentences.len().min(vectors.len())..].to_vec();
    let sentences = vectors[..material.sentences.len().min(vectors.len())].to_vec();
    material.rank(sentences, terms);
    Ok(material)
}

/// The text of the layout model's `figure_caption` region nearest to figure `f` on its
/// page (by vertical gap), if the page has one.
fn layout_caption(pages: &[Page], f: &Figure) -> Option<String> {
    let page = pages.iter().find(|p| p.number == f.page as u32)?;
    let gap = |b: &[f32; 4]| ((b[1] as f64 - f.bbox[3]).abs()).min((f.bbox[1] - b[3] as f64).abs());
    blocks::page_blocks(page)
        .into_iter()
        .filter(|b| b.label == "figure_caption")
        .min_by(|a, b| gap(&a.bbox).total_cmp(&gap(&b.bbox)))
        .map(|b| blocks::running_text(&b.words))
}

/// Figures worth a place on the cheat sheet, with captions: the layout's caption region
/// next to the figure, else a "Figure …" sentence of the chunk that links it, else that
/// chunk's text. Captioned ones first, then larger ones; tiny ones (under 1.5" on a side)
/// left out.
pub fn figure_inputs(
    chunks: &[Chunk],
    figures: &[Figure],
    pages: &[Page],
    material: &text::Material,
) -> Vec<cheatsheet::FigureInput> {
    let section_of = |chunk: &Chunk| material.sections.iter().position(|s| s.path == chunk.heading_path);
    let mut out: Vec<(bool, f64, cheatsheet::FigureInput)> = Vec::new();
    for f in figures {
        let (w, h) = (f.bbox[2] - f.bbox[0], f.bbox[3] - f.bbox[1]);
        if w < 108.0 || h < 108.0 {
            continue;
        }
        let linked = chunks.iter().find(|c| c.figures.contains(&f.path));
        let sentence = |c: &Chunk| {
            text::split_sentences(&c.text).into_iter().find(|s| s.starts_with("Figure") || s.starts_with("Fig."))
        };
        let caption = layout_caption(pages, f)
            .or_else(|| linked.and_then(sentence))
            .or_else(|| linked.map(|c| c.text.clone()))
            .map(|c| c.split_whitespace().take(40).collect::<Vec<_>>().join(" "));
        let section = linked.or_else(|| chunks.iter().find(|c| c.page == f.page as u32)).and_then(section_of);
        let input = cheatsheet::FigureInput { path: f.path.clone(), page: f.page as u32, caption, section };
        out.push((input.caption.is_some(), w * h, input));
    }
    out.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)));
    out.into_iter().map(|(_, _, f)| f).collect()
}

/// The figures' files made present on this host, each input's path now the local file's
/// (a figure whose file is gone is left out).
pub async fn fetch_figures(
    ctx: &Context,
    inputs: Vec<cheatsheet::FigureInput>,
) -> Result<Vec<cheatsheet::FigureInput>, StageError> {
    let mut out = Vec::with_capacity(inputs.len());
    for mut input in inputs {
        match ctx.blobs.fetch_immutable(&input.path).await {
            Ok(path) => input.path = path.to_string_lossy().into_owned(),
            Err(crate::blob::BlobError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        }
        out.push(input);
    }
    Ok(out)
}

/// Writes each (file name, media type, bytes) into `dir` (the data directory's `key`)
/// atomically; the artifacts to record, by key.
pub fn write_artifacts(
    dir: &Path,
    key: &str,
    outputs: Vec<(&str, &str, Vec<u8>)>,
) -> Result<Vec<Artifact>, StageError> {
    let mut artifacts = Vec::new();
    for (name, media_type, bytes) in outputs {
        write_atomic(&dir.join(name), &bytes)?;
        artifacts.push(Artifact {
            name: name.to_string(),
            path: format!("{key}/{name}"),
            media_type: media_type.to_string(),
            size_bytes: bytes.len() as i64,
        });
    }
    Ok(artifacts)
}

/// What an LLM drafted, with the passages it drafted from.
pub struct LlmDrafts {
    pub passages: Vec<llm::Passage>,
    pub drafts: llm::Drafts,
}

/// What the optional LLM wrote for a document: nothing without `[generate.llm]`.
#[derive(Default)]
pub struct LlmWork {
    pub summary: Option<String>,
    pub drafts: Option<LlmDrafts>,
}

/// The artifacts' content (no files written): used by the stage, the eval command and benches.
/// Drafts, when given, replace extractive items only where they pass [`draft`]'s checks.
pub fn study_set(
    document_id: &str,
    title: &str,
    material: &text::Material,
    figures: &[cheatsheet::FigureInput],
    llm: &LlmWork,
    config: &GenerateConfig,
    now: chrono::DateTime<chrono::Utc>,
) -> StudySet {
    let mut quiz = quiz::questions(title, material, config.questions);
    let mut cards = flashcards::cards(document_id, material, config.cards, now);
    if let Some(d) = &llm.drafts {
        let (merged, used_q, refused_q) =
            draft::merge_questions(quiz, &d.drafts, &d.passages, material, config.questions);
        let (merged_cards, used_c, refused_c) =
            draft::merge_cards(cards, &d.drafts, &d.passages, document_id, config.cards, now);
        for why in refused_q.iter().chain(&refused_c) {
            tracing::info!(document_id, "LLM draft refused: {why}");
        }
        (quiz, cards) = (merged, merged_cards);
        quiz.skipped.push(format!(
            "LLM drafts: {used_q} of {} questions and {used_c} of {} cards passed the checks and were used",
            d.drafts.questions.len(),
            d.drafts.cards.len()
        ));
    }
    StudySet { blocks: cheatsheet::plan(title, material, figures, llm.summary.as_deref(), config), quiz, cards }
}

/// Questions and cards drafted by the LLM from the 12 most important passages, when
/// `[generate.llm]` is set; a failed call is logged and the extractive items stand.
async fn drafts(ctx: &Context, title: &str, material: &text::Material) -> Option<LlmDrafts> {
    let config = ctx.pipeline.generate.llm.as_ref()?;
    let passages = draft::passages(material, 12);
    if passages.is_empty() {
        return None;
    }
    let generate = &ctx.pipeline.generate;
    match llm::draft(config, title, &passages, generate.questions, generate.cards.min(20)).await {
        Ok(drafts) => Some(LlmDrafts { passages, drafts }),
        Err(e) => {
            tracing::warn!(error = %e, "no LLM drafts; the extractive questions and cards stand");
            None
        }
    }
}

/// The LLM's summary of the 15 most central sentences, when `[generate.llm]` is set; a
/// failed call is logged and the sheet goes without.
async fn summary(ctx: &Context, title: &str, material: &text::Material) -> Option<String> {
    let config = ctx.pipeline.generate.llm.as_ref()?;
    let mut top: Vec<usize> = (0..material.sentences.len()).collect();
    top.sort_by(|&a, &b| material.sentences[b].score.total_cmp(&material.sentences[a].score));
    top.truncate(15);
    top.sort_unstable();
    let sentences: Vec<&str> = top.iter().map(|&i| material.sentences[i].text.as_str()).collect();
    if sentences.is_empty() {
        return None;
    }
    match llm::summary(config, title, &sentences).await {
        Ok(text) => Some(text),
        Err(e) => {
            tracing::warn!(error = %e, "no LLM summary; the cheat sheet is made without it");
            None
        }
    }
}

pub async fn run(ctx: &Context, payload: &Payload) -> Result<(), StageError> {
    let document_id = payload.document_id.as_str();
    let chunks = super::chunk::load(ctx, document_id).await?;
    let figures = ctx.store.figures(document_id).await?;
    let doc = ctx.store.document(document_id).await?.ok_or_else(|| StageError::BadInput("document is gone".into()))?;
    let pages = ctx.load_pages(document_id).await?;
    let material = material(ctx, &chunks, &pages).await?;
    let inputs = fetch_figures(ctx, figure_inputs(&chunks, &figures, &pages, &material)).await?;
    drop((pages, chunks, figures));
    let llm = LlmWork {
        summary: summary(ctx, &doc.filename, &material).await,
        drafts: drafts(ctx, &doc.filename, &material).await,
    };
    let workdir = ctx.workdir(document_id);
    let (dir, key) = (workdir.artifacts_dir(), workdir.key("artifacts"));
    let title = doc.filename.clone();
    let id = document_id.to_string();
    let config = ctx.pipeline.generate.clone();
    let wanted = |name: &str| doc.artifacts.as_ref().is_none_or(|a| a.iter().any(|n| n == name));
    let (want_sheet, want_quiz, want_cards) = (wanted("cheatsheet"), wanted("quiz"), wanted("flashcards"));
    let (artifacts, cards) =
        crate::engines::cpu::spawn_cpu(move || -> Result<(Vec<Artifact>, Vec<flashcards::Card>), StageError> {
            let now = chrono::Utc::now();
            let set = study_set(&id, &title, &material, &inputs, &llm, &config, now);
            let mut outputs = Vec::new();
            if want_sheet {
                outputs.push(("cheatsheet.docx", cheatsheet::MEDIA_TYPE, cheatsheet::build(&set.blocks, &config)?));
            }
            if want_quiz {
                outputs.push(("quiz.pdf", quiz::MEDIA_TYPE, quiz::build(&set.quiz)?));
                let json = serde_json::to_vec_pretty(&set.quiz).map_err(|e| StageError::transient("write quiz", e))?;
                outputs.push(("quiz.json", "application/json", json));
            }
            if want_cards {
                outputs.push((
                    "flashcards.json",
                    flashcards::MEDIA_TYPE,
                    flashcards::build(set.cards.clone(), material.skipped.lines())?,
                ));
            }
            let cards = if want_cards { set.cards } else { Vec::new() };
            Ok((write_artifacts(&dir, &key, outputs)?, cards))
        })
        .await??;
    for artifact in &artifacts {
        ctx.blobs.publish(&artifact.path).await?;
        ctx.store.put_artifact(document_id, artifact).await?;
    }
    // The review schedule lives in the store; flashcards.json is the deck as generated.
    let cards: Vec<Flashcard> = cards
        .into_iter()
        .map(|c| Flashcard {
            id: c.id,
            document_id: document_id.to_string(),
            front: c.front,
            back: c.back,
            page: c.page as i64,
            sm2: c.sm2,
            fsrs: None,
        })
        .collect();
    ctx.store.replace_flashcards(document_id, &cards).await?;
    Ok(())
}
