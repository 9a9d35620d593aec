//! Search over what was indexed: embeds the query with the indexing model (unless the mode is
//! text only), asks the collection's table ([`crate::index`]) and names each hit's document.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::error::StageError;
use crate::index::{Hit, Mode, Query};
use crate::stages::ingest::DEFAULT_COLLECTION;

/// The body of `POST /v1/search`, also built by `lectern search`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub query: String,
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    #[serde(default = "default_collection")]
    pub collection: String,
    #[serde(default)]
    pub document_ids: Option<Vec<String>>,
    /// Only documents classified as this type.
    #[serde(default)]
    pub doc_type: Option<String>,
    #[serde(default)]
    pub mode: Mode,
}

fn default_top_k() -> usize {
    5
}

fn default_collection() -> String {
    DEFAULT_COLLECTION.to_string()
}

impl SearchRequest {
    pub fn new(query: impl Into<String>, top_k: usize, mode: Mode) -> Self {
        Self { query: query.into(), top_k, collection: default_collection(), document_ids: None, doc_type: None, mode }
    }

    /// What search refuses: an empty query, `top_k` out of range, a collection name that
    /// cannot be a table.
    pub fn validate(&self) -> Result<(), SearchError> {
        if self.query.trim().is_empty() {
            return Err(SearchError::Invalid("query is empty".into()));
        }
        if self.top_k == 0 || self.top_k > MAX_TOP_K {
            return Err(SearchError::Invalid(format!("top_k must be 1 to {MAX_TOP_K}")));
        }
        crate::index::table_name(&self.collection).map_err(|e| SearchError::Invalid(e.to_string()))?;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Model(#[from] StageError),
    #[error("search LanceDB: {0}")]
    Index(#[from] crate::index::IndexError),
    #[error("job store: {0}")]
    Store(#[from] lectern_queue::storage::StoreError),
}

/// A hit and the file name its document was uploaded as.
#[derive(Debug, Clone, Serialize)]
pub struct NamedHit {
    pub name: String,
    #[serde(flatten)]
    pub hit: Hit,
}

/// Most hits one request may ask for.
pub const MAX_TOP_K: usize = 100;

pub async fn search(ctx: &Context, req: &SearchRequest) -> Result<Vec<NamedHit>, SearchError> {
    req.validate()?;
    let vector = match req.mode {
        Mode::Text => None,
        Mode::Vector | Mode::Hybrid => {
            let embedder = ctx.query_embedder().await?;
            embedder.embed(vec![req.query.clone()]).await?.pop()
        }
    };
    let index = ctx.index().await?;
    let query = Query {
        collection: &req.collection,
        text: &req.query,
        vector: vector.as_deref(),
        top_k: req.top_k,
        mode: req.mode,
        document_ids: req.document_ids.as_deref(),
        doc_type: req.doc_type.as_deref(),
        exact: false,
    };
    let hits = index.search(&query).await?;
    let mut names: HashMap<String, String> = HashMap::new();
    let mut named = Vec::with_capacity(hits.len());
    for hit in hits {
        if !names.contains_key(&hit.document_id) {
            // Empty for a document deleted while the search ran.
            let name = ctx.store.document(&hit.document_id).await?.map(|d| d.filename).unwrap_or_default();
            names.insert(hit.document_id.clone(), name);
        }
        named.push(NamedHit { name: names[&hit.document_id].clone(), hit });
    }
    Ok(named)
}
