//! The embedding model: fastembed (ONNX) owned by one dedicated thread with an explicit ONNX
//! Runtime thread budget. Concurrent callers (embed jobs, search queries) send it their
//! texts; it takes everything waiting, so one batch spans documents, sorts the texts by
//! token length and cuts batches by a token budget, which removes most of the padding that
//! a plain `embed(texts, 256)` pays for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use fastembed::{
    InitOptionsUserDefined, Pooling, QuantizationMode, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};
use tokenizers::Tokenizer;
use tokio::sync::oneshot;

use crate::config::Settings;
use crate::error::StageError;

const MAX_TOKENS: usize = 256;

/// Padded tokens (rows × longest row) per inference call. Small batches are both leaner and
/// faster here: on 4,000 corpus chunks (mean 217 tokens, 2 threads) 8192 peaked at 2.2 GiB
/// RSS and 17 chunks/s, 2048 at 0.8 GiB and 21 chunks/s (`benches/embedding.rs --only-lectern`).
pub const TOKEN_BUDGET: usize = 2048;

/// Most rows in one inference call.
const MAX_ROWS: usize = 256;

/// Most texts taken into one round of batches.
const MAX_GATHER: usize = 2048;

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, StageError>>;

/// Upper bounds of the batch-size histogram (rows per inference call) in `/metrics`.
pub const BATCH_BUCKETS: [usize; 8] = [1, 4, 16, 32, 64, 128, 256, usize::MAX];

static BATCHES: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

static BATCH_ROWS: AtomicU64 = AtomicU64::new(0);

/// Batches run by this process per [`BATCH_BUCKETS`] bucket (not cumulative), and their rows.
pub fn batch_sizes() -> ([u64; 8], u64) {
    (std::array::from_fn(|i| BATCHES[i].load(Ordering::Relaxed)), BATCH_ROWS.load(Ordering::Relaxed))
}

pub struct Embedder {
    requests: mpsc::Sender<(Vec<String>, Reply)>,
    /// Name recorded with every vector (the model's directory under the models cache).
    pub model_name: String,
}

/// Loads the model and tokenizer files from `<models>/<embedding_model>/`.
pub fn load_model(settings: &Settings) -> Result<(TextEmbedding, Tokenizer), StageError> {
    let env = crate::engines::onnx::environment(&settings.onnxruntime_library()).map_err(StageError::Transient)?;
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
    Ok((model, load_tokenizer(settings)?))
}

/// The model's tokenizer for counting tokens: without the padding and truncation its file
/// may configure, so a text's encoding length is its true token count.
pub fn load_tokenizer(settings: &Settings) -> Result<Tokenizer, StageError> {
    let path = settings.embedding_model_dir().join("tokenizer.json");
    let mut tokenizer =
        Tokenizer::from_file(&path).map_err(|e| StageError::Transient(format!("load {}: {e}", path.display())))?;
    tokenizer.with_padding(None);
    tokenizer.with_truncation(None).map_err(|e| StageError::Transient(format!("tokenizer {}: {e}", path.display())))?;
    Ok(tokenizer)
}

impl Embedder {
    /// Loads the model and starts its thread, named `name`, at the calling thread's
    /// priority. Blocking: call from a blocking thread.
    pub fn start(settings: &Settings, name: &str) -> Result<Self, StageError> {
        let (mut model, tokenizer) = load_model(settings)?;
        let (tx, rx) = mpsc::channel::<(Vec<String>, Reply)>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut requests = vec![first];
                    let mut gathered = requests[0].0.len();
                    while gathered < MAX_GATHER {
                        match rx.try_recv() {
                            Ok(r) => {
                                gathered += r.0.len();
                                requests.push(r);
                            }
                            Err(_) => break,
                        }
                    }
                    let texts: Vec<&str> = requests.iter().flat_map(|r| r.0.iter().map(String::as_str)).collect();
                    match embed_sorted(&mut model, &tokenizer, &texts) {
                        Ok(mut vectors) => {
                            for (request, reply) in requests {
                                let rest = vectors.split_off(request.len());
                                let _ = reply.send(Ok(std::mem::replace(&mut vectors, rest)));
                            }
                        }
                        Err(e) => {
                            for (_, reply) in requests {
                                let _ = reply.send(Err(StageError::Transient(e.to_string())));
                            }
                        }
                    }
                }
            })
            .map_err(|e| StageError::transient("start embedding thread", e))?;
        Ok(Self { requests: tx, model_name: settings.embedding_model.clone() })
    }

    /// L2-normalised embeddings, one per text, in order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, StageError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.requests.send((texts, reply)).map_err(|_| StageError::Transient("embedding thread stopped".into()))?;
        rx.await.map_err(|_| StageError::Transient("embedding thread stopped".into()))?
    }
}

/// Embeds `texts` in batches of similar token length; returns L2-normalised vectors in the
/// order of `texts`. This is the whole of the stage's inference work, shared with the bench.
pub fn embed_sorted(
    model: &mut TextEmbedding,
    tokenizer: &Tokenizer,
    texts: &[&str],
) -> Result<Vec<Vec<f32>>, StageError> {
    let lengths: Vec<usize> = tokenizer
        .encode_batch(texts.to_vec(), true)
        .map_err(|e| StageError::Transient(format!("tokenize: {e}")))?
        .iter()
        .map(|e| e.len().min(MAX_TOKENS))
        .collect();
    let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
    for rows in length_batches(&lengths) {
        let batch: Vec<&str> = rows.iter().map(|&i| texts[i]).collect();
        let bucket = BATCH_BUCKETS.iter().position(|&b| batch.len() <= b).expect("last bucket is unbounded");
        BATCHES[bucket].fetch_add(1, Ordering::Relaxed);
        BATCH_ROWS.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let vectors = model.embed(&batch, Some(batch.len())).map_err(|e| StageError::transient("embed", e))?;
        for (&i, mut v) in rows.iter().zip(vectors) {
            normalise(&mut v);
            out[i] = v;
        }
    }
    Ok(out)
}

/// Indices of texts (by token length) grouped into batches: sorted ascending, each batch
/// at most [`MAX_ROWS`] rows and [`TOKEN_BUDGET`] padded tokens.
pub fn length_batches(lengths: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    let mut batches = Vec::new();
    let mut start = 0;
    while start < order.len() {
        // Sorted ascending: the last row of a batch is its longest.
        let mut end = start + 1;
        while end < order.len() && end - start < MAX_ROWS && (end + 1 - start) * lengths[order[end]] <= TOKEN_BUDGET {
            end += 1;
        }
        batches.push(order[start..end].to_vec());
        start = end;
    }
    batches
}

pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}
