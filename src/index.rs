//! The vector index: chunk embeddings in a LanceDB table under `<data>/lancedb`.
//!
//! One row per chunk with its provenance (document, page, bbox) and the name of the model
//! that made the vector. Re-indexing a document replaces its rows.

use std::path::Path;
use std::sync::Arc;

use futures::TryStreamExt;
use lancedb::arrow::arrow_array::{
    Array, FixedSizeListArray, Float32Array, Int32Array, RecordBatch, StringArray, types::Float32Type,
};
use lancedb::arrow::arrow_schema::{DataType, Field, Schema, SchemaRef};
use lancedb::query::{ExecutableQuery, QueryBase};
use lancedb::{Connection, DistanceType, Table};
use serde::Serialize;

use crate::pipeline::chunk::Chunk;

pub const TABLE: &str = "chunks";
pub const DIM: usize = 384;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("LanceDB: {0}")]
    Lance(#[from] lancedb::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] lancedb::arrow::arrow_schema::ArrowError),
    #[error("vector has {0} dimensions, expected {DIM}")]
    Dimension(usize),
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub chunk_id: String,
    pub document_id: String,
    pub page: i32,
    pub text: String,
    pub bbox: [f32; 4],
    /// Cosine similarity (1 = same direction).
    pub score: f32,
}

pub struct VectorIndex {
    db: Connection,
    schema: SchemaRef,
}

fn schema() -> SchemaRef {
    let f32_list = |n: i32| DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), n);
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("document_id", DataType::Utf8, false),
        Field::new("page", DataType::Int32, false),
        Field::new("chunk_index", DataType::Int32, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("bbox", f32_list(4), false),
        Field::new("model", DataType::Utf8, false),
        Field::new("vector", f32_list(DIM as i32), false),
    ]))
}

impl VectorIndex {
    pub async fn open(dir: &Path) -> Result<Self, IndexError> {
        let db = lancedb::connect(&dir.to_string_lossy()).execute().await?;
        Ok(Self { db, schema: schema() })
    }

    async fn table(&self, create: bool) -> Result<Option<Table>, IndexError> {
        match self.db.open_table(TABLE).execute().await {
            Ok(t) => Ok(Some(t)),
            Err(lancedb::Error::TableNotFound { .. }) if create => {
                match self.db.create_empty_table(TABLE, self.schema.clone()).execute().await {
                    Ok(t) => Ok(Some(t)),
                    // Another worker created it first.
                    Err(lancedb::Error::TableAlreadyExists { .. }) => {
                        Ok(Some(self.db.open_table(TABLE).execute().await?))
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Err(lancedb::Error::TableNotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces all rows of `document_id` with these chunks and vectors.
    pub async fn replace_document(
        &self,
        document_id: &str,
        chunks: &[Chunk],
        vectors: &[Vec<f32>],
        model: &str,
    ) -> Result<(), IndexError> {
        let table = self.table(true).await?.expect("created");
        table.delete(&format!("document_id = '{}'", document_id.replace('\'', "''"))).await?;
        if chunks.is_empty() {
            return Ok(());
        }
        if let Some(v) = vectors.iter().find(|v| v.len() != DIM) {
            return Err(IndexError::Dimension(v.len()));
        }
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(chunks.iter().map(|c| c.id.as_str()))),
                Arc::new(StringArray::from_iter_values(chunks.iter().map(|c| c.document_id.as_str()))),
                Arc::new(Int32Array::from_iter_values(chunks.iter().map(|c| c.page as i32))),
                Arc::new(Int32Array::from_iter_values(chunks.iter().map(|c| c.index as i32))),
                Arc::new(StringArray::from_iter_values(chunks.iter().map(|c| c.text.as_str()))),
                Arc::new(FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
                    chunks.iter().map(|c| Some(c.bbox.map(Some))),
                    4,
                )),
                Arc::new(StringArray::from_iter_values(chunks.iter().map(|_| model))),
                Arc::new(FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
                    vectors.iter().map(|v| Some(v.iter().copied().map(Some))),
                    DIM as i32,
                )),
            ],
        )?;
        table.add(batch).execute().await?;
        Ok(())
    }

    pub async fn count(&self, document_id: Option<&str>) -> Result<usize, IndexError> {
        let Some(table) = self.table(false).await? else { return Ok(0) };
        let filter = document_id.map(|d| format!("document_id = '{}'", d.replace('\'', "''")));
        Ok(table.count_rows(filter).await?)
    }

    /// Nearest chunks to `vector` by cosine distance.
    pub async fn search(&self, vector: &[f32], top_k: usize) -> Result<Vec<Hit>, IndexError> {
        let Some(table) = self.table(false).await? else { return Ok(Vec::new()) };
        let batches: Vec<RecordBatch> = table
            .query()
            .nearest_to(vector)?
            .distance_type(DistanceType::Cosine)
            .limit(top_k)
            .execute()
            .await?
            .try_collect()
            .await?;
        let mut hits = Vec::new();
        for batch in &batches {
            let col = |name: &str| batch.column_by_name(name).cloned();
            let (Some(id), Some(doc), Some(page), Some(text), Some(bbox), Some(dist)) =
                (col("id"), col("document_id"), col("page"), col("text"), col("bbox"), col("_distance"))
            else {
                continue;
            };
            let id = id.as_any().downcast_ref::<StringArray>().expect("id is utf8");
            let doc = doc.as_any().downcast_ref::<StringArray>().expect("document_id is utf8");
            let page = page.as_any().downcast_ref::<Int32Array>().expect("page is int32");
            let text = text.as_any().downcast_ref::<StringArray>().expect("text is utf8");
            let bbox = bbox.as_any().downcast_ref::<FixedSizeListArray>().expect("bbox is a list");
            let dist = dist.as_any().downcast_ref::<Float32Array>().expect("distance is f32");
            for i in 0..batch.num_rows() {
                let b = bbox.value(i);
                let b = b.as_any().downcast_ref::<Float32Array>().expect("bbox items are f32");
                hits.push(Hit {
                    chunk_id: id.value(i).to_string(),
                    document_id: doc.value(i).to_string(),
                    page: page.value(i),
                    text: text.value(i).to_string(),
                    bbox: [b.value(0), b.value(1), b.value(2), b.value(3)],
                    score: 1.0 - dist.value(i),
                });
            }
        }
        Ok(hits)
    }
}
