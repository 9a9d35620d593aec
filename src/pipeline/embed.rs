//! Stage 6, embed: fastembed runs the local MiniLM model (ONNX, int8) over the chunks on a
//! blocking thread with an explicit ONNX Runtime thread budget; vectors go into LanceDB
//! ([`crate::index`]), replacing the document's previous rows.

use std::sync::Mutex;

use fastembed::{
    InitOptionsUserDefined, Pooling, QuantizationMode, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};

use super::StageError;
use crate::config::Settings;
use crate::context::Context;

/// Name recorded with every vector.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2-int8";
const BATCH: usize = 16;
const MAX_TOKENS: usize = 256;

pub struct Embedder {
    model: Mutex<TextEmbedding>,
}

impl Embedder {
    pub fn load(settings: &Settings) -> Result<Self, StageError> {
        let env = crate::onnx::environment(&settings.onnxruntime_library()).map_err(StageError::Transient)?;
        let dir = settings.embedding_model_dir();
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| {
                StageError::Transient(format!("read {} (run scripts/setup.sh): {e}", dir.join(name).display()))
            })
        };
        let model = UserDefinedEmbeddingModel {
            onnx_file: read("model.onnx")?,
            external_initializers: Vec::new(),
            tokenizer_files: TokenizerFiles {
                tokenizer_file: read("tokenizer.json")?,
                config_file: read("config.json")?,
                special_tokens_map_file: read("special_tokens_map.json")?,
                tokenizer_config_file: read("tokenizer_config.json")?,
            },
            pooling: Some(Pooling::Mean),
            quantization: QuantizationMode::Static,
            output_key: None,
        };
        let options = InitOptionsUserDefined::default()
            .with_environment(env)
            .with_max_length(MAX_TOKENS)
            .with_intra_threads(settings.onnx_threads);
        let model = TextEmbedding::try_new_from_user_defined(model, options)
            .map_err(|e| StageError::transient("load embedding model", e))?;
        Ok(Self { model: Mutex::new(model) })
    }

    /// L2-normalised embeddings, one per text. Blocking: call from a blocking thread.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, StageError> {
        let mut model = self.model.lock().map_err(|_| StageError::Transient("embedder poisoned".into()))?;
        let mut vectors = model.embed(texts, Some(BATCH)).map_err(|e| StageError::transient("embed", e))?;
        for v in &mut vectors {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|x| *x /= norm);
        }
        Ok(vectors)
    }
}

pub async fn run(ctx: &Context, document_id: &str) -> Result<(), StageError> {
    let chunks = super::chunk::load(ctx, document_id)?;
    let embedder = ctx.embedder().await?;
    let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
    let vectors = tokio::task::spawn_blocking(move || embedder.embed(&texts)).await??;
    let index = ctx.index().await?;
    index
        .replace_document(document_id, &chunks, &vectors, MODEL_NAME)
        .await
        .map_err(|e| StageError::transient("write to LanceDB", e))
}
