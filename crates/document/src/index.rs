//! The chunk index: LanceDB under `<data>/lancedb` (or `<store>/lancedb` in the remote
//! object store, see [`crate::blob`]), one table per collection (`chunks_<collection>`).
//!
//! One row per chunk with its provenance (document, page, bbox, heading path), the document's
//! type and the model that made the vector. Writing a document appends its rows (a retry first
//! deletes the ones it finds). Every [`MAINTAIN_EVERY`] writes the table is maintained: a full-text
//! index is created (or updated), small files are compacted, old versions pruned, and once
//! the table holds [`ANN_MIN_ROWS`] rows a vector index ([`AnnKind`]) is built; below that, vector
//! search is exact.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::TryStreamExt;
use lance_index::scalar::FullTextSearchQuery;
use lancedb::arrow::arrow_array::{
    Array, FixedSizeListArray, Float32Array, Int32Array, RecordBatch, StringArray, types::Float32Type,
};
use lancedb::arrow::arrow_schema::{DataType, Field, Schema, SchemaRef};
use lancedb::index::scalar::FtsIndexBuilder;
use lancedb::index::vector::{IvfHnswSqIndexBuilder, IvfPqIndexBuilder, IvfSqIndexBuilder};
use lancedb::index::{Index, IndexType};
use lancedb::query::{ExecutableQuery, QueryBase};
use lancedb::table::{CompactionOptions, Duration, OptimizeAction, OptimizeOptions};
use lancedb::{Connection, DistanceType, Table};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::model::chunk::{Chunk, Span};

/// Writes between two maintenance runs of a table.
pub const MAINTAIN_EVERY: u64 = 20;
/// Rows from which vector search uses an ANN index instead of an exact scan.
pub const ANN_MIN_ROWS: usize = 50_000;
/// Versions older than this are pruned by maintenance (readers in other processes may still
/// be on a recent one).
pub const KEEP_VERSIONS_FOR: std::time::Duration = std::time::Duration::from_secs(30);
/// Reciprocal-rank-fusion constant.
const RRF_K: f32 = 60.0;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("LanceDB: {0}")]
    Lance(#[from] lancedb::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] lancedb::arrow::arrow_schema::ArrowError),
    #[error("vectors have {got} dimensions, the table has {want}")]
    Dimension { got: usize, want: usize },
    #[error("invalid collection name {0:?}: use 1-64 of a-z, 0-9, _ and -")]
    Collection(String),
    /// The commit that carried these rows (with other documents' rows) failed.
    #[error("LanceDB commit: {0}")]
    Commit(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Vector,
    Text,
    #[default]
    Hybrid,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vector" => Ok(Self::Vector),
            "text" => Ok(Self::Text),
            "hybrid" => Ok(Self::Hybrid),
            _ => Err(format!("unknown search mode {s:?} (vector, text or hybrid)")),
        }
    }
}

/// What to search; `vector` is required for vector and hybrid mode.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pub collection: &'a str,
    pub text: &'a str,
    pub vector: Option<&'a [f32]>,
    pub top_k: usize,
    pub mode: Mode,
    pub document_ids: Option<&'a [String]>,
    pub doc_type: Option<&'a str>,
    /// Exact vector search even when an ANN index exists (for measuring its recall).
    pub exact: bool,
}

/// One search result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hit {
    pub chunk_id: String,
    pub document_id: String,
    pub doc_type: String,
    pub page: i32,
    /// On `page`, in PDF points from the top-left corner.
    pub bbox: [f32; 4],
    /// Every page the chunk lies on, with its box there (`page`/`bbox` are the first).
    pub spans: Vec<Span>,
    pub heading_path: Vec<String>,
    pub text: String,
    /// Vector: cosine similarity. Text: BM25. Hybrid: reciprocal-rank-fusion score.
    pub score: f32,
}

/// Table-wide facts about a document's rows.
pub struct DocumentMeta<'a> {
    pub collection: &'a str,
    pub document_id: &'a str,
    pub doc_type: &'a str,
    pub model: &'a str,
}

/// Removes the versions of `table` older than `older_than`, and the files only they used.
async fn prune(table: &Table, older_than: Duration) -> Result<(), IndexError> {
    let prune = OptimizeAction::Prune {
        older_than: Some(older_than),
        delete_unverified: Some(false),
        error_if_tagged_old_versions: None,
    };
    table.optimize(prune).await?;
    Ok(())
}

/// Size facts of one table, for benchmarks and `/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct TableStats {
    pub rows: usize,
    pub versions: usize,
    pub fragments: usize,
    pub bytes_on_disk: u64,
    pub indices: Vec<String>,
}

/// Where the tables live: a local directory, or an object-store URL (`s3://…`) with the
/// options LanceDB needs to reach it. Commits to an object store rely on conditional PUT
/// (`If-None-Match`), so writers on several hosts never overwrite each other's versions.
#[derive(Debug, Clone)]
pub struct IndexLocation {
    pub uri: String,
    pub storage_options: Vec<(String, String)>,
}

impl From<&Path> for IndexLocation {
    fn from(dir: &Path) -> Self {
        Self { uri: dir.to_string_lossy().into_owned(), storage_options: Vec::new() }
    }
}

impl IndexLocation {
    /// The table's directory when the tables are local.
    fn local_dir(&self) -> Option<&Path> {
        (!self.uri.contains("://")).then(|| Path::new(&self.uri))
    }
}

pub struct VectorIndex {
    open: Mutex<Open>,
    location: IndexLocation,
    consistency: std::time::Duration,
    writes: AtomicU64,
    maintaining: Mutex<()>,
    ann: std::sync::Mutex<AnnParams>,
    /// Tables known to have their full-text index (indices are never dropped).
    fts: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Rows waiting for their table's next commit, per table.
    appends: std::sync::Mutex<HashMap<String, Arc<Appends>>>,
}

/// Told how the commit that carried its rows went.
type CommitWaiter = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Group commit of one table's appends: while a commit is in flight, the documents that
/// arrive wait and go together in the next one, so a process has at most one commit per
/// table in flight however many embed jobs it runs (each commit is a manifest write, a
/// conditional PUT in an object store, that every other writer must then rebase over).
#[derive(Default)]
struct Appends {
    pending: std::sync::Mutex<Vec<(RecordBatch, CommitWaiter)>>,
    commit: Mutex<()>,
}

/// A connection and the tables opened through it. They share one LanceDB session, whose
/// caches keep readers (and open files) of index versions that maintenance has pruned;
/// maintenance therefore swaps in a fresh `Open`, and the old one goes when the last
/// search holding its tables ends.
struct Open {
    db: Connection,
    tables: HashMap<String, Table>,
}

impl Open {
    async fn connect(location: &IndexLocation, consistency: std::time::Duration) -> Result<Self, IndexError> {
        let db = lancedb::connect(&location.uri)
            .storage_options(location.storage_options.iter().cloned())
            .read_consistency_interval(consistency)
            .execute()
            .await?;
        Ok(Self { db, tables: HashMap::new() })
    }
}

/// The vector index maintenance builds once a table holds [`ANN_MIN_ROWS`] rows: IVF
/// partitions (√rows of them) and how the vectors in each are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnKind {
    /// Product-quantised: a byte per 16 dimensions (lancedb's default sub-vectors).
    IvfPq,
    /// Scalar-quantised: a byte per dimension.
    IvfSq,
    /// A graph (HNSW) per partition over scalar-quantised vectors.
    IvfHnswSq,
}

impl AnnKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::IvfPq => "IVF-PQ",
            Self::IvfSq => "IVF-SQ",
            Self::IvfHnswSq => "IVF-HNSW-SQ",
        }
    }

    fn index(self) -> Index {
        match self {
            Self::IvfPq => Index::IvfPq(IvfPqIndexBuilder::default().distance_type(DistanceType::Cosine)),
            Self::IvfSq => Index::IvfSq(IvfSqIndexBuilder::default().distance_type(DistanceType::Cosine)),
            Self::IvfHnswSq => Index::IvfHnswSq(IvfHnswSqIndexBuilder::default().distance_type(DistanceType::Cosine)),
        }
    }

    fn built_as(self, t: &IndexType) -> bool {
        matches!(
            (self, t),
            (Self::IvfPq, IndexType::IvfPq) | (Self::IvfSq, IndexType::IvfSq) | (Self::IvfHnswSq, IndexType::IvfHnswSq)
        )
    }
}

/// The vector index to build and how searches use it: partitions searched, and how many
/// times `k` candidates are re-ranked by exact distance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnnParams {
    pub kind: AnnKind,
    pub nprobes: usize,
    pub refine_factor: u32,
}

impl Default for AnnParams {
    fn default() -> Self {
        // benches/search.rs at 100k rows (results/search-2026-12-06-ann.txt): IVF-PQ 40/20
        // found 0.67 of exact search's top 10, IVF-SQ 1.00 at every setting tried, in the
        // same time (its distances are near exact; 40 probes for data less clustered).
        Self { kind: AnnKind::IvfSq, nprobes: 40, refine_factor: 2 }
    }
}

fn schema(dim: usize) -> SchemaRef {
    let f32_list = |n: i32| DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), n);
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("document_id", DataType::Utf8, false),
        Field::new("chunk_index", DataType::Int32, false),
        Field::new("page", DataType::Int32, false),
        Field::new("bbox", f32_list(4), false),
        Field::new("spans", DataType::Utf8, false),
        Field::new("heading_path", DataType::Utf8, false),
        Field::new("doc_type", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("vector", f32_list(dim as i32), false),
    ]))
}

pub fn table_name(collection: &str) -> Result<String, IndexError> {
    let ok = !collection.is_empty()
        && collection.len() <= 64
        && collection.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok { Ok(format!("chunks_{collection}")) } else { Err(IndexError::Collection(collection.into())) }
}

/// Creates the table's first, empty version with a commit that fails, rather than
/// overwrites, when another writer created the table first. (lancedb's create rechecks
/// for the table before its commit and, if it now exists, commits an overwrite that may
/// land after the winner's rows and drop them: lance issue #4451.)
async fn create_table(location: &IndexLocation, name: &str, schema: SchemaRef) -> Result<(), lance::Error> {
    use lance::dataset::{CommitBuilder, InsertBuilder, WriteMode, WriteParams};
    use lance::io::{ObjectStoreParams, StorageOptionsAccessor};
    // Where lancedb's connection keeps the table.
    let uri = format!("{}/{name}.lance", location.uri.trim_end_matches('/'));
    let options = StorageOptionsAccessor::with_static_options(location.storage_options.iter().cloned().collect());
    let store = ObjectStoreParams { storage_options_accessor: Some(Arc::new(options)), ..Default::default() };
    let params = WriteParams { mode: WriteMode::Create, store_params: Some(store.clone()), ..Default::default() };
    let empty = RecordBatch::new_empty(schema);
    let create = InsertBuilder::new(uri.as_str()).with_params(&params).execute_uncommitted(vec![empty]).await?;
    // No retries: a create that finds the table at commit time would be an overwrite.
    CommitBuilder::new(uri.as_str()).with_store_params(store).with_max_retries(0).execute(create).await?;
    Ok(())
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl VectorIndex {
    pub async fn open(location: impl Into<IndexLocation>) -> Result<Self, IndexError> {
        // Workers in other processes write too: every read checks for their commits.
        Self::open_with_consistency(location, std::time::Duration::ZERO).await
    }

    /// Opens with reads that check for other processes' commits at most once per
    /// `interval` (benches compare it with [`VectorIndex::open`]'s every read).
    pub async fn open_with_consistency(
        location: impl Into<IndexLocation>,
        interval: std::time::Duration,
    ) -> Result<Self, IndexError> {
        let location = location.into();
        Ok(Self {
            open: Mutex::new(Open::connect(&location, interval).await?),
            location,
            consistency: interval,
            writes: AtomicU64::new(0),
            maintaining: Mutex::new(()),
            ann: std::sync::Mutex::new(AnnParams::default()),
            fts: Default::default(),
            appends: Default::default(),
        })
    }

    /// Changes how later vector searches use the vector index, and which kind the next
    /// maintenance builds (benches sweep them).
    pub fn set_ann(&self, ann: AnnParams) {
        *self.ann.lock().expect("ann lock") = ann;
    }

    /// The collection's table; created with a `dim`-wide vector column when `dim` is given.
    async fn table(&self, collection: &str, dim: Option<usize>) -> Result<Option<Table>, IndexError> {
        let name = table_name(collection)?;
        let mut open = self.open.lock().await;
        if let Some(t) = open.tables.get(&name) {
            return Ok(Some(t.clone()));
        }
        let db = &open.db;
        let table = match db.open_table(&name).execute().await {
            Ok(t) => t,
            Err(lancedb::Error::TableNotFound { .. }) => match dim {
                None => return Ok(None),
                Some(dim) => {
                    // Another writer may have created it first: then this create fails, and
                    // the table it made is opened.
                    let created = create_table(&self.location, &name, schema(dim)).await;
                    match db.open_table(&name).execute().await {
                        Ok(t) => t,
                        Err(e) => return Err(created.err().map(lancedb::Error::from).unwrap_or(e).into()),
                    }
                }
            },
            Err(e) => return Err(e.into()),
        };
        open.tables.insert(name, table.clone());
        Ok(Some(table))
    }

    /// Replaces all rows of the document with these chunks.
    ///
    /// Only the document's own job writes its rows, and only a retry finds old ones: those
    /// are deleted, then the chunks appended. (A merge-insert would do both in one commit,
    /// but to find the rows it deletes it joins against every column of the whole table.)
    pub async fn replace_document(
        &self,
        meta: &DocumentMeta<'_>,
        chunks: &[Chunk],
        vectors: &[Vec<f32>],
    ) -> Result<(), IndexError> {
        let Some(dim) = vectors.first().map(Vec::len) else {
            return self.delete_document(meta.collection, meta.document_id).await;
        };
        if let Some(v) = vectors.iter().find(|v| v.len() != dim) {
            return Err(IndexError::Dimension { got: v.len(), want: dim });
        }
        let table = self.table(meta.collection, Some(dim)).await?.expect("created");
        let schema = table.schema().await?;
        let want = match schema.field_with_name("vector")?.data_type() {
            DataType::FixedSizeList(_, n) => *n as usize,
            _ => dim,
        };
        if want != dim {
            return Err(IndexError::Dimension { got: dim, want });
        }
        let batch = rows(schema.clone(), meta, chunks, vectors)?;
        let filter = format!("document_id = {}", quote(meta.document_id));
        if table.count_rows(Some(filter.clone())).await? > 0 {
            table.delete(&filter).await?;
        }
        self.append(&table, schema, batch).await?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Appends `batch` to `table` in the table's next group commit ([`Appends`]).
    async fn append(&self, table: &Table, schema: SchemaRef, batch: RecordBatch) -> Result<(), IndexError> {
        let appends = self.appends.lock().expect("appends lock").entry(table.name().to_string()).or_default().clone();
        let (done, mut result) = tokio::sync::oneshot::channel();
        appends.pending.lock().expect("pending lock").push((batch, done));
        let _committing = appends.commit.lock().await;
        // The commit before took these rows along.
        if let Ok(outcome) = result.try_recv() {
            return outcome.map_err(IndexError::Commit);
        }
        let (batches, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut *appends.pending.lock().expect("pending lock")).into_iter().unzip();
        let outcome = match lancedb::arrow::arrow_select::concat::concat_batches(&schema, &batches) {
            Ok(all) => table.add(all).execute().await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        for done in waiting {
            let _ = done.send(outcome.clone());
        }
        result.try_recv().unwrap_or_else(|_| Err("commit result lost".into())).map_err(IndexError::Commit)
    }

    pub async fn delete_document(&self, collection: &str, document_id: &str) -> Result<(), IndexError> {
        if let Some(table) = self.table(collection, None).await? {
            table.delete(&format!("document_id = {}", quote(document_id))).await?;
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Collections that have a table.
    pub async fn collections(&self) -> Result<Vec<String>, IndexError> {
        let db = self.open.lock().await.db.clone();
        let names = db.table_names().execute().await?;
        Ok(names.iter().filter_map(|n| n.strip_prefix("chunks_")).map(str::to_string).collect())
    }

    pub async fn count(&self, collection: &str, document_id: Option<&str>) -> Result<usize, IndexError> {
        let Some(table) = self.table(collection, None).await? else { return Ok(0) };
        Ok(table.count_rows(document_id.map(|d| format!("document_id = {}", quote(d)))).await?)
    }

    /// Runs [`VectorIndex::maintain`] on a task when enough writes have gone by.
    pub fn maintain_in_background(self: Arc<Self>, collection: &str) {
        if !self.writes.load(Ordering::Relaxed).is_multiple_of(MAINTAIN_EVERY) {
            return;
        }
        let collection = collection.to_string();
        tokio::spawn(async move {
            if let Err(e) = self.maintain(&collection).await {
                tracing::warn!(collection, error = %e, "index maintenance failed");
            }
        });
    }

    /// Builds missing indices, folds new rows into existing ones, compacts files, prunes
    /// versions older than [`KEEP_VERSIONS_FOR`] and reconnects (see [`Open`]). One run at a
    /// time per process.
    pub async fn maintain(&self, collection: &str) -> Result<(), IndexError> {
        let Some(table) = self.table(collection, None).await? else { return Ok(()) };
        let _one = self.maintaining.lock().await;
        let indices = table.list_indices().await?;
        let rows = table.count_rows(None).await?;
        if rows > 0 && !indices.iter().any(|i| matches!(i.index_type, IndexType::FTS)) {
            table.create_index(&["text"], Index::FTS(FtsIndexBuilder::default())).execute().await?;
        }
        // A vector index of another kind is replaced.
        let kind = self.ann.lock().expect("ann lock").kind;
        if rows >= ANN_MIN_ROWS && !indices.iter().any(|i| kind.built_as(&i.index_type)) {
            table.create_index(&["vector"], kind.index()).execute().await?;
        }
        table.optimize(OptimizeAction::Compact { options: CompactionOptions::default(), remap_options: None }).await?;
        table.optimize(OptimizeAction::Index(OptimizeOptions::default())).await?;
        prune(&table, Duration::from_std(KEEP_VERSIONS_FOR).expect("small duration")).await?;
        drop(table);
        *self.open.lock().await = Open::connect(&self.location, self.consistency).await?;
        Ok(())
    }

    /// Frees the files of a deleted collection's rows now rather than at a maintenance
    /// that may never come: compacts, then prunes every version but the latest. The empty
    /// table stays: dropping it under another process's open handle would let that
    /// process's next append commit a version over files that are gone.
    pub async fn reclaim(&self, collection: &str) -> Result<(), IndexError> {
        let Some(table) = self.table(collection, None).await? else { return Ok(()) };
        let _one = self.maintaining.lock().await;
        table.optimize(OptimizeAction::Compact { options: CompactionOptions::default(), remap_options: None }).await?;
        prune(&table, Duration::zero()).await
    }

    pub async fn stats(&self, collection: &str) -> Result<Option<TableStats>, IndexError> {
        let Some(table) = self.table(collection, None).await? else { return Ok(None) };
        let stats = table.stats().await?;
        Ok(Some(TableStats {
            rows: stats.num_rows,
            versions: table.list_versions().await?.len(),
            fragments: stats.fragment_stats.num_fragments,
            // Every file of the table where it is local; the manifest's data and index sizes
            // in an object store.
            bytes_on_disk: match self.location.local_dir() {
                Some(dir) => dir_size(&dir.join(format!("{}.lance", table_name(collection)?))),
                None => stats.total_bytes as u64,
            },
            indices: table.list_indices().await?.into_iter().map(|i| i.index_type.to_string()).collect(),
        }))
    }

    pub async fn search(&self, q: &Query<'_>) -> Result<Vec<Hit>, IndexError> {
        let Some(table) = self.table(q.collection, None).await? else { return Ok(Vec::new()) };
        let filter = filter(q);
        match q.mode {
            Mode::Vector => self.vector(&table, q, filter.as_deref(), q.top_k).await,
            Mode::Text => self.text(&table, q, filter.as_deref(), q.top_k).await,
            Mode::Hybrid => {
                let depth = (q.top_k * 4).max(20);
                let (vector, text) = tokio::try_join!(
                    self.vector(&table, q, filter.as_deref(), depth),
                    self.text(&table, q, filter.as_deref(), depth)
                )?;
                Ok(fuse(&[vector, text], q.top_k))
            }
        }
    }

    async fn vector(
        &self,
        table: &Table,
        q: &Query<'_>,
        filter: Option<&str>,
        k: usize,
    ) -> Result<Vec<Hit>, IndexError> {
        let Some(vector) = q.vector else { return Ok(Vec::new()) };
        let mut query = table.query().nearest_to(vector)?.distance_type(DistanceType::Cosine).limit(k);
        if let Some(f) = filter {
            query = query.only_if(f);
        }
        if q.exact {
            query = query.bypass_vector_index();
        } else {
            // Used once a vector index exists; flat search ignores them. The candidates
            // re-ranked exactly stay refine_factor × top_k when hybrid search asks for a
            // deeper list: fusion only needs the ranks.
            let ann = *self.ann.lock().expect("ann lock");
            let refine = (ann.refine_factor as usize * q.top_k).div_ceil(k).max(1) as u32;
            query = query.nprobes(ann.nprobes)?.refine_factor(refine);
        }
        let batches: Vec<RecordBatch> = query.execute().await?.try_collect().await?;
        Ok(hits(&batches, |d| 1.0 - d, "_distance"))
    }

    async fn text(&self, table: &Table, q: &Query<'_>, filter: Option<&str>, k: usize) -> Result<Vec<Hit>, IndexError> {
        let name = table.name().to_string();
        if !self.fts.lock().expect("fts lock").contains(&name) {
            let indices = table.list_indices().await?;
            if !indices.iter().any(|i| matches!(i.index_type, IndexType::FTS)) {
                // Maintenance builds it too; a search that comes first builds it here.
                table.create_index(&["text"], Index::FTS(FtsIndexBuilder::default())).execute().await?;
            }
            self.fts.lock().expect("fts lock").insert(name);
        }
        let mut query = table.query().full_text_search(FullTextSearchQuery::new(q.text.to_string())).limit(k);
        if let Some(f) = filter {
            query = query.only_if(f);
        }
        let batches: Vec<RecordBatch> = query.execute().await?.try_collect().await?;
        Ok(hits(&batches, |s| s, "_score"))
    }
}

fn filter(q: &Query<'_>) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(ids) = q.document_ids {
        let list: Vec<String> = ids.iter().map(|d| quote(d)).collect();
        parts.push(if list.is_empty() { "false".to_string() } else { format!("document_id IN ({})", list.join(", ")) });
    }
    if let Some(t) = q.doc_type {
        parts.push(format!("doc_type = {}", quote(t)));
    }
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

/// Reciprocal rank fusion: each list adds 1/(k + rank) for every hit in it.
pub fn fuse(lists: &[Vec<Hit>], top_k: usize) -> Vec<Hit> {
    let mut fused: Vec<Hit> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for list in lists {
        for (rank, hit) in list.iter().enumerate() {
            let add = 1.0 / (RRF_K + rank as f32 + 1.0);
            match at.get(&hit.chunk_id) {
                Some(&i) => fused[i].score += add,
                None => {
                    at.insert(hit.chunk_id.clone(), fused.len());
                    fused.push(Hit { score: add, ..hit.clone() });
                }
            }
        }
    }
    fused.sort_by(|a, b| b.score.total_cmp(&a.score));
    fused.truncate(top_k);
    fused
}

fn rows(
    schema: SchemaRef,
    meta: &DocumentMeta<'_>,
    chunks: &[Chunk],
    vectors: &[Vec<f32>],
) -> Result<RecordBatch, IndexError> {
    let dim = vectors[0].len() as i32;
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(chunks.iter().map(|c| c.id.as_str()))),
            Arc::new(StringArray::from_iter_values(chunks.iter().map(|_| meta.document_id))),
            Arc::new(Int32Array::from_iter_values(chunks.iter().map(|c| c.index as i32))),
            Arc::new(Int32Array::from_iter_values(chunks.iter().map(|c| c.page as i32))),
            Arc::new(FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
                chunks.iter().map(|c| Some(c.bbox.map(Some))),
                4,
            )),
            Arc::new(StringArray::from_iter_values(chunks.iter().map(|c| json(&c.spans)))),
            Arc::new(StringArray::from_iter_values(chunks.iter().map(|c| json(&c.heading_path)))),
            Arc::new(StringArray::from_iter_values(chunks.iter().map(|_| meta.doc_type))),
            Arc::new(StringArray::from_iter_values(chunks.iter().map(|_| meta.model))),
            Arc::new(StringArray::from_iter_values(chunks.iter().map(|c| c.text.as_str()))),
            Arc::new(FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
                vectors.iter().map(|v| Some(v.iter().copied().map(Some))),
                dim,
            )),
        ],
    )?)
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

fn hits(batches: &[RecordBatch], score: impl Fn(f32) -> f32, score_column: &str) -> Vec<Hit> {
    let mut hits = Vec::new();
    for batch in batches {
        let strings =
            |name: &str| batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
        let (Some(id), Some(doc), Some(doc_type), Some(heading), Some(text), Some(spans)) = (
            strings("id"),
            strings("document_id"),
            strings("doc_type"),
            strings("heading_path"),
            strings("text"),
            strings("spans"),
        ) else {
            continue;
        };
        let page = batch.column_by_name("page").and_then(|c| c.as_any().downcast_ref::<Int32Array>().cloned());
        let bbox = batch.column_by_name("bbox").and_then(|c| c.as_any().downcast_ref::<FixedSizeListArray>().cloned());
        let raw = batch.column_by_name(score_column).and_then(|c| c.as_any().downcast_ref::<Float32Array>().cloned());
        let (Some(page), Some(bbox), Some(raw)) = (page, bbox, raw) else { continue };
        for i in 0..batch.num_rows() {
            let b = bbox.value(i);
            let b = b.as_any().downcast_ref::<Float32Array>().expect("bbox items are f32");
            hits.push(Hit {
                chunk_id: id.value(i).to_string(),
                document_id: doc.value(i).to_string(),
                doc_type: doc_type.value(i).to_string(),
                page: page.value(i),
                bbox: [b.value(0), b.value(1), b.value(2), b.value(3)],
                spans: serde_json::from_str(spans.value(i)).unwrap_or_default(),
                heading_path: serde_json::from_str(heading.value(i)).unwrap_or_default(),
                text: text.value(i).to_string(),
                score: score(raw.value(i)),
            });
        }
    }
    hits
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: &str) -> Hit {
        Hit {
            chunk_id: id.into(),
            document_id: "d".into(),
            doc_type: "other".into(),
            page: 1,
            bbox: [0.0; 4],
            spans: vec![],
            heading_path: vec![],
            text: id.into(),
            score: 0.0,
        }
    }

    #[test]
    fn rrf_prefers_hits_found_by_both_lists() {
        let fused = fuse(&[vec![hit("a"), hit("b"), hit("c")], vec![hit("c"), hit("d")]], 2);
        let ids: Vec<&str> = fused.iter().map(|h| h.chunk_id.as_str()).collect();
        assert_eq!(ids, ["c", "a"]);
        assert!((fused[0].score - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-6);
    }

    #[test]
    fn collection_names_are_checked() {
        assert_eq!(table_name("default").unwrap(), "chunks_default");
        assert!(table_name("../etc").is_err());
        assert!(table_name("").is_err());
    }
}
