//! Shared state of a Lectern process: settings, the job store, the pipeline definition,
//! and the heavy resources (pdfium, ONNX models, LanceDB) loaded on first use, so a worker
//! that only serves the `ocr` queue never loads the embedding model.

use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::classify::Labels;
use crate::config::{PipelineConfig, Settings};
use crate::engines::embedder::Embedder;
use crate::engines::layout::LayoutModel;
use crate::engines::pdfium::PdfiumHost;
use crate::engines::pdfium_child::PdfiumProcess;
use crate::error::StageError;
use crate::index::VectorIndex;
use crate::model::workdir::WorkDir;
use crate::text::wordfreq::WordFreq;
use lectern_queue::engine::EngineConfig;
use lectern_queue::storage::Store;

pub struct Context {
    pub settings: Settings,
    pub store: Arc<Store>,
    pub pipeline: PipelineConfig,
    layout: OnceCell<Arc<LayoutModel>>,
    embedder: OnceCell<Arc<Embedder>>,
    query_embedder: OnceCell<Arc<Embedder>>,
    tokenizer: OnceCell<Arc<tokenizers::Tokenizer>>,
    labels: OnceCell<Arc<Labels>>,
    index: OnceCell<Arc<VectorIndex>>,
    pdfium_process: OnceCell<Arc<PdfiumProcess>>,
    word_frequencies: OnceCell<Arc<WordFreq>>,
}

impl Context {
    pub fn new(settings: Settings, store: Arc<Store>, pipeline: PipelineConfig) -> Self {
        Self {
            settings,
            store,
            pipeline,
            layout: OnceCell::new(),
            embedder: OnceCell::new(),
            query_embedder: OnceCell::new(),
            tokenizer: OnceCell::new(),
            labels: OnceCell::new(),
            index: OnceCell::new(),
            pdfium_process: OnceCell::new(),
            word_frequencies: OnceCell::new(),
        }
    }

    pub fn engine_config(&self) -> EngineConfig {
        let mut config = EngineConfig::new(self.pipeline.queues.clone());
        config.lease = self.settings.lease;
        config.heartbeat = (self.settings.lease / 3).min(std::time::Duration::from_secs(2));
        config.grace = self.settings.grace;
        config.retention = self.settings.retention;
        config
    }

    pub fn workdir(&self, document_id: &str) -> WorkDir {
        WorkDir::new(self.settings.document_dir(document_id))
    }

    /// pdfium for uploaded PDFs: child processes under limits, kept between calls.
    pub async fn pdfium_process(&self) -> Result<Arc<PdfiumProcess>, StageError> {
        let library = self.settings.pdfium_library();
        self.pdfium_process.get_or_try_init(|| async move { PdfiumProcess::new(&library).map(Arc::new) }).await.cloned()
    }

    /// Stops what the workers keep running between jobs (the pdfium children), once they
    /// have stopped.
    pub async fn close(&self) {
        if let Some(pdfium) = self.pdfium_process.get() {
            pdfium.close().await;
        }
    }

    /// The process's single pdfium owner thread, for tools (evals, previews) on trusted PDFs.
    pub async fn pdfium(&self) -> Result<Arc<PdfiumHost>, StageError> {
        let path = self.settings.pdfium_library();
        crate::engines::cpu::spawn_cpu(move || PdfiumHost::get(&path)).await?
    }

    pub async fn layout_model(&self) -> Result<Arc<LayoutModel>, StageError> {
        let settings = self.settings.clone();
        self.layout
            .get_or_try_init(|| async move {
                crate::engines::cpu::spawn_cpu(move || LayoutModel::load(&settings).map(Arc::new)).await?
            })
            .await
            .cloned()
    }

    /// The stages' embedding thread (started on first use), at the workers' CPU priority.
    pub async fn embedder(&self) -> Result<Arc<Embedder>, StageError> {
        let settings = self.settings.clone();
        self.embedder
            .get_or_try_init(|| async move {
                crate::engines::cpu::spawn_cpu(move || Embedder::start(&settings, "lectern-embed").map(Arc::new))
                    .await?
            })
            .await
            .cloned()
    }

    /// The embedding thread for search queries. Where the stages' CPU work runs at a lower
    /// priority (`serve --workers`), queries get a model of their own at normal priority, so
    /// they neither wait for idle CPU nor queue behind a document's batches; elsewhere it
    /// is [`Self::embedder`]. Call it from the server's runtime, whose blocking threads keep
    /// normal priority (a lowered thread cannot raise itself again).
    pub async fn query_embedder(&self) -> Result<Arc<Embedder>, StageError> {
        if crate::engines::cpu::cpu_priority() == crate::engines::cpu::CpuPriority::Nice(0) {
            return self.embedder().await;
        }
        let settings = self.settings.clone();
        self.query_embedder
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || Embedder::start(&settings, "lectern-query").map(Arc::new)).await?
            })
            .await
            .cloned()
    }

    /// The embedding model's tokenizer, for counting chunk tokens.
    pub async fn tokenizer(&self) -> Result<Arc<tokenizers::Tokenizer>, StageError> {
        let settings = self.settings.clone();
        self.tokenizer
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || crate::engines::embedder::load_tokenizer(&settings).map(Arc::new))
                    .await?
            })
            .await
            .cloned()
    }

    /// Document-type label vectors, embedded once.
    pub async fn labels(&self) -> Result<Arc<Labels>, StageError> {
        self.labels
            .get_or_try_init(|| async {
                let labels = &self.pipeline.classify.labels;
                let vectors = self.embedder().await?.embed(labels.values().cloned().collect()).await?;
                Ok(Arc::new(Labels { names: labels.keys().cloned().collect(), vectors }))
            })
            .await
            .cloned()
    }

    /// English word frequencies, for telling a document's key terms from common words.
    pub async fn word_frequencies(&self) -> Result<Arc<WordFreq>, StageError> {
        let path = self.settings.word_frequencies();
        self.word_frequencies
            .get_or_try_init(|| async move {
                crate::engines::cpu::spawn_cpu(move || {
                    WordFreq::load(&path).map(Arc::new).map_err(|e| StageError::Transient(e.to_string()))
                })
                .await?
            })
            .await
            .cloned()
    }

    pub async fn index(&self) -> Result<Arc<VectorIndex>, StageError> {
        let dir = self.settings.lancedb_dir();
        self.index
            .get_or_try_init(|| async move {
                VectorIndex::open(&dir).await.map(Arc::new).map_err(|e| StageError::transient("open LanceDB", e))
            })
            .await
            .cloned()
    }
}
