//! Shared state of a Lectern process: settings, the job store, the pipeline definition,
//! and the heavy resources (pdfium, ONNX models, LanceDB) loaded on first use, so a worker
//! that only serves the `ocr` queue never loads the embedding model.

use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::blob::Blobs;
use crate::classify::Labels;
use crate::config::{PipelineConfig, Settings};
use crate::engines::embedder::Embedder;
use crate::engines::layout::LayoutModel;
use crate::engines::pdfium::PdfiumHost;
use crate::engines::pdfium_child::PdfiumProcess;
use crate::error::StageError;
use crate::extract::Schemas;
use crate::index::{IndexLocation, VectorIndex};
use crate::model::workdir::{Page, WorkDir, read_json};
use crate::text::wordfreq::WordFreq;
use lectern_queue::engine::EngineConfig;
use lectern_queue::storage::Store;

pub struct Context {
    pub settings: Settings,
    /// Where every file is kept: the data directory, or the remote store with the data
    /// directory as this host's cache.
    pub blobs: Blobs,
    pub store: Arc<Store>,
    pub pipeline: PipelineConfig,
    /// Extraction schemas per document type, checked when the process starts.
    pub schemas: Arc<Schemas>,
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
            blobs: Blobs::new(&settings.data_dir, settings.remote.clone()),
            settings,
            store,
            pipeline,
            schemas: Arc::new(Schemas::builtin().expect("the built-in extraction schemas are valid")),
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
        WorkDir::new(&self.settings.data_dir, document_id)
    }

    /// Makes the page files in `range` present on this host, with the images `images`
    /// names for each (nothing to do without a remote store).
    pub async fn fetch_pages(
        &self,
        workdir: &WorkDir,
        range: std::ops::RangeInclusive<u32>,
        images: fn(&Page) -> [Option<&String>; 2],
    ) -> Result<(), StageError> {
        if self.blobs.remote().is_none() {
            return Ok(());
        }
        for number in range {
            let path = self.blobs.fetch(&workdir.page_key(number)).await?;
            let page: Page = tokio::task::spawn_blocking(move || read_json(&path)).await??;
            for name in images(&page).into_iter().flatten() {
                self.blobs.fetch_immutable(&workdir.key(&format!("pages/{name}"))).await?;
            }
        }
        Ok(())
    }

    /// Makes every page file of a document present on this host; returns their numbers.
    pub async fn fetch_all_pages(&self, workdir: &WorkDir) -> Result<Vec<u32>, StageError> {
        let keys = self.blobs.list(&workdir.key("pages")).await?;
        let keys: Vec<String> = keys.into_iter().filter(|k| k.ends_with(".json")).collect();
        if self.blobs.remote().is_some() {
            for key in &keys {
                self.blobs.fetch(key).await?;
            }
        }
        Ok(WorkDir::numbers_of(&keys))
    }

    /// Every page of a document, in page order, fetched and read off the runtime.
    pub async fn load_pages(&self, document_id: &str) -> Result<Vec<Page>, StageError> {
        let workdir = self.workdir(document_id);
        let numbers = self.fetch_all_pages(&workdir).await?;
        tokio::task::spawn_blocking(move || numbers.into_iter().map(|n| workdir.load_page(n)).collect()).await?
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
        let location = match &self.settings.remote {
            Some(remote) => IndexLocation { uri: remote.url_of("lancedb"), storage_options: remote.options.clone() },
            None => self.settings.lancedb_dir().as_path().into(),
        };
        self.index
            .get_or_try_init(|| async move {
                VectorIndex::open(location).await.map(Arc::new).map_err(|e| StageError::transient("open LanceDB", e))
            })
            .await
            .cloned()
    }
}
