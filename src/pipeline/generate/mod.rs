//! Stage 7, generate: study material from the indexed chunks, with no LLM:
//! a cheat sheet (.docx), a quiz (.pdf, answer key on its own page) and flashcards (.json
//! with SM-2 scheduling fields). Content is extractive: sentences ranked by how many of the
//! document's frequent terms they carry.

pub mod cheatsheet;
pub mod flashcards;
pub mod quiz;
pub mod text;

use super::StageError;
use super::workdir::write_atomic;
use crate::context::Context;
use crate::storage::{Artifact, Flashcard};

/// Names an upload may pick from (`artifacts=`); each is one file below.
pub const ARTIFACTS: [&str; 3] = ["cheatsheet", "quiz", "flashcards"];

pub async fn run(ctx: &Context, document_id: &str) -> Result<(), StageError> {
    let chunks = super::chunk::load(ctx, document_id)?;
    let figures = ctx.store.figures(document_id).await?;
    let doc = ctx.store.document(document_id).await?.ok_or_else(|| StageError::BadInput("document is gone".into()))?;
    let dir = ctx.workdir(document_id).artifacts_dir();
    let title = doc.filename.clone();
    let id = document_id.to_string();
    let wanted = |name: &str| doc.artifacts.as_ref().is_none_or(|a| a.iter().any(|n| n == name));
    let (want_sheet, want_quiz, want_cards) = (wanted("cheatsheet"), wanted("quiz"), wanted("flashcards"));
    let (artifacts, cards) =
        tokio::task::spawn_blocking(move || -> Result<(Vec<Artifact>, Vec<flashcards::Card>), StageError> {
            let material = text::Material::from_chunks(&chunks);
            let cards = flashcards::cards(&id, &material, chrono::Utc::now());
            let mut outputs = Vec::new();
            if want_sheet {
                outputs.push((
                    "cheatsheet.docx",
                    cheatsheet::MEDIA_TYPE,
                    cheatsheet::build(&title, &material, &figures)?,
                ));
            }
            if want_quiz {
                outputs.push(("quiz.pdf", quiz::MEDIA_TYPE, quiz::build(&title, &material)?));
            }
            if want_cards {
                outputs.push(("flashcards.json", flashcards::MEDIA_TYPE, flashcards::build(cards.clone())?));
            }
            let cards = if want_cards { cards } else { Vec::new() };
            let mut artifacts = Vec::new();
            for (name, media_type, bytes) in outputs {
                let path = dir.join(name);
                write_atomic(&path, &bytes)?;
                artifacts.push(Artifact {
                    name: name.to_string(),
                    path: path.to_string_lossy().into_owned(),
                    media_type: media_type.to_string(),
                    size_bytes: bytes.len() as i64,
                });
            }
            Ok((artifacts, cards))
        })
        .await??;
    for artifact in &artifacts {
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
        })
        .collect();
    ctx.store.replace_flashcards(document_id, &cards).await?;
    Ok(())
}
