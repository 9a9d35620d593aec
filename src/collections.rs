//! Listing use cases, shared by HTTP and CLI: documents page by page, collections with what
//! they hold, and deleting a whole collection. `scope` is the collections the caller may
//! see (`None`: every one).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::status::{DeleteError, delete_document};
use lectern_document::context::Context;
use lectern_document::error::StageError;
use lectern_document::index::IndexError;
use lectern_queue::storage::{Document, DocumentQuery, DocumentStatus, StoreError};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{0}")]
    Invalid(String),
    #[error("this token may not use collection {0:?}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("index: {0}")]
    Index(#[from] IndexError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Delete(#[from] DeleteError),
    #[error(transparent)]
    Study(#[from] crate::study::StudyError),
}

/// What a caller asks a listing for; every field optional.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct ListRequest {
    pub collection: Option<String>,
    pub status: Option<String>,
    pub doc_type: Option<String>,
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Listing {
    pub documents: Vec<Document>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One page of documents, oldest first. Pages are cut by (created time, id), so a listing
/// walked to its end returns every document that existed when it began exactly once, even
/// while uploads go on.
pub async fn list_documents(ctx: &Context, req: &ListRequest, scope: Option<&[String]>) -> Result<Listing, ListError> {
    let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ListError::Invalid(format!("limit must be 1 to {MAX_LIMIT}, not {limit}")));
    }
    let status = req
        .status
        .as_deref()
        .map(|s| DocumentStatus::parse(s).map_err(|_| ListError::Invalid(format!("unknown status {s:?}"))))
        .transpose()?;
    let after = req.cursor.as_deref().map(parse_cursor).transpose()?;
    let collections = match (&req.collection, scope) {
        (Some(c), Some(scope)) if !scope.contains(c) => return Err(ListError::Forbidden(c.clone())),
        (Some(c), _) => Some(vec![c.clone()]),
        (None, scope) => scope.map(<[String]>::to_vec),
    };
    let query = DocumentQuery { collections, status, doc_type: req.doc_type.clone(), after, limit };
    let documents = ctx.store.list_documents(&query).await?;
    let next_cursor = (documents.len() as i64 == limit)
        .then(|| documents.last().map(|d| format!("{}.{}", d.created_at, d.id)))
        .flatten();
    Ok(Listing { documents, next_cursor })
}

fn parse_cursor(cursor: &str) -> Result<(i64, String), ListError> {
    let bad = || ListError::Invalid(format!("cursor {cursor:?} is not one a listing gave"));
    let (at, id) = cursor.split_once('.').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_string()))
}

#[derive(Debug, Serialize)]
pub struct CollectionSummary {
    pub name: String,
    pub documents: i64,
    /// Documents per type (`unclassified` until the embed stage has classified them).
    pub types: BTreeMap<String, i64>,
    /// Chunks in the collection's LanceDB table.
    pub chunks: usize,
}

/// Every collection the caller may see, with its documents per type and indexed chunks.
pub async fn collections(ctx: &Context, scope: Option<&[String]>) -> Result<Vec<CollectionSummary>, ListError> {
    let mut out: Vec<CollectionSummary> = Vec::new();
    for count in ctx.store.collection_counts().await? {
        if scope.is_some_and(|s| !s.contains(&count.collection)) {
            continue;
        }
        if out.last().is_none_or(|c| c.name != count.collection) {
            out.push(CollectionSummary {
                name: count.collection.clone(),
                documents: 0,
                types: BTreeMap::new(),
                chunks: 0,
            });
        }
        let summary = out.last_mut().expect("pushed above");
        summary.documents += count.documents;
        *summary.types.entry(count.doc_type.unwrap_or_else(|| "unclassified".into())).or_default() += count.documents;
    }
    let index = ctx.index().await?;
    for summary in &mut out {
        summary.chunks = index.count(&summary.name, None).await?;
    }
    Ok(out)
}

/// Deletes every document of a collection as `lectern delete` does (jobs, indexed chunks,
/// rows, files), then frees the files of its LanceDB table's rows; returns how many.
pub async fn delete_collection(ctx: &Context, name: &str, scope: Option<&[String]>) -> Result<usize, ListError> {
    if scope.is_some_and(|s| !s.iter().any(|c| c == name)) {
        return Err(ListError::Forbidden(name.to_string()));
    }
    // Always the first page: what it lists is gone before the next query.
    let query = DocumentQuery {
        collections: Some(vec![name.to_string()]),
        status: None,
        doc_type: None,
        after: None,
        limit: 100,
    };
    for set in ctx.store.study_sets(name).await? {
        crate::study::delete(ctx, &set.id).await?;
    }
    ctx.store.delete_collection_settings(name).await?;
    let mut deleted = 0;
    loop {
        let page = ctx.store.list_documents(&query).await?;
        if page.is_empty() {
            ctx.index().await?.reclaim(name).await?;
            return Ok(deleted);
        }
        for document in page {
            if delete_document(ctx, &document.id).await? {
                deleted += 1;
            }
        }
    }
}
