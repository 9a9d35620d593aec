//! Settings (data directory, database, model paths) and the pipeline definition
//! loaded from `jobs/pipeline.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid pipeline definition {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("pipeline definition: {0}")]
    Invalid(String),
}

/// Where things live. Everything a run produces goes under `data_dir`, or, with a remote
/// store, into that store, `data_dir` then being this host's cache ([`crate::blob`]).
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// The S3-compatible store for every file and the LanceDB tables (`--store`).
    pub remote: Option<crate::blob::Remote>,
    /// `None`: the embedded SQLite file `<data_dir>/lectern.db`.
    pub database_url: Option<String>,
    /// Directory the set-up script fills from `models/manifest.toml`.
    pub models_dir: PathBuf,
    /// Threads ONNX Runtime may use inside one inference (layout, embedding).
    pub onnx_threads: usize,
    /// Tesseract language(s), e.g. "eng" or "eng+fra".
    pub ocr_languages: String,
    /// Detect each document's language and OCR it with that language's data when installed.
    pub ocr_detect_language: bool,
    /// Embedding model directory under `models_dir`; also the model name stored per vector.
    pub embedding_model: String,
    /// How long a claimed job is held without a heartbeat.
    pub lease: std::time::Duration,
    /// On shutdown, how long running jobs may finish before they are released.
    pub grace: std::time::Duration,
    /// Finished jobs are deleted after this long (`None`: kept).
    pub retention: Option<std::time::Duration>,
    /// With a remote store, the most this host's cache (the data directory's files) holds.
    pub cache_max_bytes: u64,
    /// How often `serve` sweeps orphan files out of the store (`None`: never).
    pub sweep_every: Option<std::time::Duration>,
    /// Flush each upload to disk (fsync) before answering. Off, the OS writes it back on
    /// its own, as SQLite's WAL at `synchronous=NORMAL` does for the job rows; the ingest
    /// job fails an upload a power loss tore, by its hash.
    pub sync_uploads: bool,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: usize,
    /// HTTP routes other than health need a bearer token.
    pub auth_required: bool,
    /// Requests per minute per token.
    pub rate_per_minute: u32,
    /// Uploads one token may stream at once.
    pub concurrent_uploads: usize,
    /// Key of the HMAC-SHA256 signature on webhooks; uploads with a callback URL need it.
    pub webhook_secret: Option<String>,
    /// Web origins allowed to call the API from a browser (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// Internal hosts webhooks may call (addresses, CIDR blocks, host names); none by default.
    pub webhook_allow: Vec<String>,
}

impl Settings {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            remote: None,
            database_url: None,
            models_dir: PathBuf::from("models/cache"),
            onnx_threads: 1,
            ocr_languages: "eng".to_string(),
            ocr_detect_language: true,
            embedding_model: "minilm".to_string(),
            lease: std::time::Duration::from_secs(30),
            grace: std::time::Duration::from_secs(30),
            retention: Some(std::time::Duration::from_secs(7 * 24 * 3600)),
            cache_max_bytes: 4 << 30,
            sweep_every: Some(std::time::Duration::from_secs(3600)),
            sync_uploads: false,
            max_upload_bytes: 512 << 20,
            auth_required: true,
            rate_per_minute: 6000,
            concurrent_uploads: 8,
            webhook_secret: None,
            cors_origins: Vec::new(),
            webhook_allow: Vec::new(),
        }
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.data_dir.join("uploads")
    }
    /// Per-document work directory: pages, figures, chunks, artifacts.
    pub fn document_dir(&self, document_id: &str) -> PathBuf {
        self.data_dir.join(document_key(document_id))
    }
    /// A study set's files (`lectern study`, `POST /v1/collections/{c}/study`).
    pub fn study_dir(&self, study_id: &str) -> PathBuf {
        self.data_dir.join(study_key(study_id))
    }
    pub fn lancedb_dir(&self) -> PathBuf {
        self.data_dir.join("lancedb")
    }
    pub fn pdfium_library(&self) -> PathBuf {
        self.models_dir.join("lib/libpdfium.so")
    }
    pub fn onnxruntime_library(&self) -> PathBuf {
        self.models_dir.join("lib/libonnxruntime.so.1.31.1")
    }
    pub fn layout_model(&self) -> PathBuf {
        self.models_dir.join("layout/layout_cdla.onnx")
    }
    pub fn word_frequencies(&self) -> PathBuf {
        self.models_dir.join("wordfreq/small_en.msgpack.gz")
    }
    pub fn embedding_model_dir(&self) -> PathBuf {
        self.models_dir.join(&self.embedding_model)
    }
}

/// The blob-store key (and data-directory path) of a document's files.
pub fn document_key(document_id: &str) -> String {
    format!("documents/{document_id}")
}

/// The blob-store key of a study set's files.
pub fn study_key(study_id: &str) -> String {
    format!("study/{study_id}")
}

/// Settings a TOML file (`--config`, `LECTERN_CONFIG`) may give, and the environment
/// variable each one stands for. Precedence: flag, then environment, then file, then default.
pub const FILE_KEYS: [(&str, &str); 32] = [
    ("data_dir", "LECTERN_DATA_DIR"),
    ("store", "LECTERN_STORE"),
    ("s3_endpoint", "AWS_ENDPOINT_URL"),
    ("s3_region", "AWS_REGION"),
    ("s3_access_key_id", "AWS_ACCESS_KEY_ID"),
    ("s3_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    ("s3_allow_http", "AWS_ALLOW_HTTP"),
    ("s3_virtual_hosted_style", "AWS_VIRTUAL_HOSTED_STYLE_REQUEST"),
    ("database_url", "DATABASE_URL"),
    ("models_dir", "LECTERN_MODELS_DIR"),
    ("pipeline", "LECTERN_PIPELINE"),
    ("onnx_threads", "LECTERN_ONNX_THREADS"),
    ("embedding_model", "LECTERN_EMBEDDING_MODEL"),
    ("ocr_lang", "LECTERN_OCR_LANG"),
    ("ocr_detect_lang", "LECTERN_OCR_DETECT_LANG"),
    ("lease_secs", "LECTERN_LEASE_SECS"),
    ("grace_secs", "LECTERN_GRACE_SECS"),
    ("max_upload_mb", "LECTERN_MAX_UPLOAD_MB"),
    ("retention_hours", "LECTERN_RETENTION_HOURS"),
    ("cache_max_mb", "LECTERN_CACHE_MAX_MB"),
    ("sweep_every_mins", "LECTERN_SWEEP_EVERY_MINS"),
    ("log_format", "LECTERN_LOG_FORMAT"),
    ("listen", "LECTERN_LISTEN"),
    ("worker_nice", "LECTERN_WORKER_NICE"),
    ("sync_uploads", "LECTERN_SYNC_UPLOADS"),
    ("no_auth", "LECTERN_NO_AUTH"),
    ("rate_per_minute", "LECTERN_RATE_PER_MINUTE"),
    ("concurrent_uploads", "LECTERN_CONCURRENT_UPLOADS"),
    ("cors_origins", "LECTERN_CORS_ORIGINS"),
    ("webhook_secret", "LECTERN_WEBHOOK_SECRET"),
    ("webhook_allow", "LECTERN_WEBHOOK_ALLOW"),
    ("config", "LECTERN_CONFIG"),
];

/// Reads a settings file into `(environment variable, value)` pairs for the keys it sets.
pub fn read_config_file(path: &Path) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
    let mut out = Vec::new();
    for (key, value) in table {
        let Some((_, var)) = FILE_KEYS.iter().find(|(k, _)| *k == key && *k != "config") else {
            return Err(ConfigError::Invalid(format!("{}: unknown setting {key:?}", path.display())));
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigError::Invalid(format!(
                    "{}: {key} = {other} is not a string, number or boolean",
                    path.display()
                )));
            }
        };
        out.push((*var, value));
    }
    Ok(out)
}

pub use lectern_queue::engine::QueueConfig;

/// Which stages run per page range rather than per document.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FanOutConfig {
    /// Consecutive stages that run once per page range.
    pub stages: Vec<String>,
    /// Pages per job in those stages.
    pub pages_per_job: u32,
}

impl Default for FanOutConfig {
    fn default() -> Self {
        Self { stages: Vec::new(), pages_per_job: 1 }
    }
}

/// The pipeline: stage order, page fan-out and per-queue defaults. Each stage runs on the
/// queue of the same name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub stages: Vec<String>,
    #[serde(default)]
    pub fan_out: FanOutConfig,
    #[serde(default)]
    pub chunk: ChunkConfig,
    #[serde(default)]
    pub classify: ClassifyConfig,
    #[serde(default)]
    pub generate: GenerateConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    pub queues: BTreeMap<String, QueueConfig>,
}

/// Budgets per document: a document over one fails at ingest with the limit in its reason.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Pages (PDF pages, TIFF pages, slides, DOCX virtual pages).
    pub max_pages: u32,
    /// Pixels over all pages of an image upload, in millions.
    pub max_megapixels: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { max_pages: 2000, max_megapixels: 20_000 }
    }
}

/// The pipeline definition shipped with this build, used when no file is given.
const BUILTIN_PIPELINE: &str = include_str!("../../../jobs/pipeline.toml");

impl PipelineConfig {
    pub fn builtin() -> Self {
        Self::parse(BUILTIN_PIPELINE, Path::new("jobs/pipeline.toml")).expect("built-in pipeline is valid")
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        for stage in &config.stages {
            if Stage::parse(stage).is_none() {
                return Err(ConfigError::Invalid(format!("unknown stage {stage:?}")));
            }
            if !config.queues.contains_key(stage) {
                return Err(ConfigError::Invalid(format!("stage {stage:?} has no [queues.{stage}] table")));
            }
        }
        // A document is done when its last stage finishes; per-page jobs finish one range
        // at a time, so only a stage that runs once can be last (its fan-in waits for all).
        if config.stages.last().is_some_and(|last| config.is_per_page(last)) {
            return Err(ConfigError::Invalid(
                "the last stage must run once per document, not per page range (fan_out)".into(),
            ));
        }
        for queue in config.queues.keys() {
            if !config.stages.contains(queue) && queue != WEBHOOK_QUEUE {
                return Err(ConfigError::Invalid(format!("[queues.{queue}] is neither a stage nor \"webhook\"")));
            }
        }
        if !config.queues.contains_key(WEBHOOK_QUEUE) {
            return Err(ConfigError::Invalid("[queues.webhook] is missing (webhook deliveries run there)".into()));
        }
        if config.stages.first().map(String::as_str) != Some("ingest") {
            return Err(ConfigError::Invalid("the first stage must be \"ingest\"".into()));
        }
        for stage in &config.fan_out.stages {
            if !config.stages.contains(stage) || stage == "ingest" {
                return Err(ConfigError::Invalid(format!("fan_out stage {stage:?} is not a stage after ingest")));
            }
        }
        if config.chunk.max_tokens < 32 || config.chunk.overlap_tokens >= config.chunk.max_tokens / 2 {
            return Err(ConfigError::Invalid(
                "chunk.max_tokens must be at least 32 and overlap_tokens under half of it".into(),
            ));
        }
        config.generate.validate().map_err(ConfigError::Invalid)?;
        if config.fan_out.pages_per_job == 0 {
            return Err(ConfigError::Invalid("fan_out.pages_per_job must be at least 1".into()));
        }
        Ok(config)
    }

    pub fn is_per_page(&self, stage: &str) -> bool {
        self.fan_out.stages.iter().any(|s| s == stage)
    }

    /// Every queue workers may serve: the stages in order, then webhook deliveries.
    pub fn queue_names(&self) -> Vec<String> {
        let mut names = self.stages.clone();
        names.push(WEBHOOK_QUEUE.to_string());
        names
    }

    /// A worker pool per stage queue, each at its configured concurrency.
    pub fn stage_specs(&self) -> Vec<lectern_queue::engine::QueueSpec> {
        self.stages
            .iter()
            .map(|s| lectern_queue::engine::QueueSpec { queue: s.clone(), concurrency: self.queues[s].concurrency })
            .collect()
    }

    pub fn queue(&self, name: &str) -> Option<&QueueConfig> {
        self.queues.get(name)
    }

    /// The stage after `stage`, if any.
    pub fn next_stage(&self, stage: &str) -> Option<&str> {
        let i = self.stages.iter().position(|s| s == stage)?;
        self.stages.get(i + 1).map(String::as_str)
    }
}

/// Pipeline stages, in the order `jobs/pipeline.toml` normally lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Ingest,
    Render,
    Layout,
    Ocr,
    Chunk,
    Embed,
    Extract,
    Generate,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Ingest,
        Stage::Render,
        Stage::Layout,
        Stage::Ocr,
        Stage::Chunk,
        Stage::Embed,
        Stage::Extract,
        Stage::Generate,
    ];

    pub fn parse(s: &str) -> Option<Stage> {
        Self::ALL.into_iter().find(|stage| stage.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Render => "render",
            Stage::Layout => "layout",
            Stage::Ocr => "ocr",
            Stage::Chunk => "chunk",
            Stage::Embed => "embed",
            Stage::Extract => "extract",
            Stage::Generate => "generate",
        }
    }
}

/// The queue of webhook deliveries (not a stage: no document work).
pub const WEBHOOK_QUEUE: &str = "webhook";

/// Chunk sizes, from `[chunk]` in `jobs/pipeline.toml`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChunkConfig {
    /// Most tokens in a chunk, heading path included (MiniLM reads 256 with its two specials).
    pub max_tokens: usize,
    /// Tokens of whole trailing sentences repeated at the start of the next chunk.
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self { max_tokens: 250, overlap_tokens: 0 }
    }
}

/// `[classify]`: label → description, and the least similarity to accept a label.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassifyConfig {
    pub threshold: f32,
    pub labels: BTreeMap<String, String>,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        Self { threshold: 0.25, labels: BTreeMap::new() }
    }
}

/// Names an upload may pick from (`artifacts=`); each is one file below.
pub const ARTIFACTS: [&str; 3] = ["cheatsheet", "quiz", "flashcards"];

/// `[generate]` in `jobs/pipeline.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GenerateConfig {
    /// Cheat sheet paper: "a4" or "letter".
    pub paper: String,
    /// Cheat sheet page budget.
    pub pages: u32,
    pub questions: usize,
    pub cards: usize,
    /// `[generate.llm]`: an OpenAI-compatible endpoint that writes the sheet's summary.
    pub llm: Option<LlmConfig>,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self { paper: "a4".into(), pages: 2, questions: 10, cards: 40, llm: None }
    }
}

impl GenerateConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.paper.as_str(), "a4" | "letter") {
            return Err(format!("generate.paper must be \"a4\" or \"letter\", not {:?}", self.paper));
        }
        if self.pages == 0 {
            return Err("generate.pages must be at least 1".into());
        }
        if let Some(llm) = &self.llm
            && (!(llm.url.starts_with("http://") || llm.url.starts_with("https://")) || llm.model.is_empty())
        {
            return Err(format!("generate.llm needs an http(s) url and a model, got {llm:?}"));
        }
        Ok(())
    }
}

/// `[generate.llm]` in `jobs/pipeline.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// Base URL of the API, e.g. `http://127.0.0.1:11434/v1`; `/chat/completions` is added.
    pub url: String,
    pub model: String,
    /// Environment variable holding a bearer token, when the endpoint wants one.
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    120
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_pipeline_runs_every_stage_in_order() {
        let p = PipelineConfig::builtin();
        assert_eq!(p.stages, ["ingest", "render", "layout", "ocr", "chunk", "embed", "extract", "generate"]);
        assert_eq!(p.next_stage("ocr"), Some("chunk"));
        assert_eq!(p.next_stage("generate"), None);
        assert!(p.queue("ocr").unwrap().concurrency >= 1);
        assert!(p.is_per_page("render") && p.is_per_page("ocr") && !p.is_per_page("chunk"));
    }

    #[test]
    fn config_file_keys_map_to_their_environment_variables() {
        let dir = std::env::temp_dir().join(format!("lectern-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("lectern.toml");
        std::fs::write(&file, "data_dir = \"/srv/lectern\"\nonnx_threads = 2\nno_auth = true\n").unwrap();
        let mut vars = read_config_file(&file).unwrap();
        vars.sort();
        assert_eq!(
            vars,
            [
                ("LECTERN_DATA_DIR", "/srv/lectern".to_string()),
                ("LECTERN_NO_AUTH", "true".into()),
                ("LECTERN_ONNX_THREADS", "2".into())
            ]
        );
        std::fs::write(&file, "dta_dir = \"x\"\n").unwrap();
        assert!(read_config_file(&file).unwrap_err().to_string().contains("dta_dir"));
    }

    #[test]
    fn unknown_stage_is_rejected() {
        let bad = "stages = [\"ingest\", \"teleport\"]\n[queues.ingest]\nconcurrency=1\ntimeout_secs=1\nmax_attempts=1\nbackoff_ms=1\npriority=0\n";
        let err = PipelineConfig::parse(bad, Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("teleport"), "{err}");
    }

    #[test]
    fn pipeline_may_not_end_with_a_per_page_stage() {
        let cut = BUILTIN_PIPELINE.replace(r#""ocr", "chunk", "embed", "extract", "generate"]"#, r#""ocr"]"#);
        let err = PipelineConfig::parse(&cut, Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("last stage"), "{err}");
    }
}
