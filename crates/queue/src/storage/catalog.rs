//! The catalog: documents and what their stages recorded (figures, artifacts, flashcards
//! and their review state), collection settings, study sets requested over a collection,
//! and API tokens. Written once for both databases.

use sqlx::Row;

use super::db::{on_pool, on_tx};
use super::queue::{announce, insert_job};
use super::{
    ApiToken, Artifact, CollectionCount, CollectionSettings, Document, DocumentQuery, Figure, Flashcard, Fsrs,
    NewDocument, NewJob, Result, Scheduler, Sm2, Store, StoreError, StudySet, artifact_from_row, document_from_row,
    figure_from_row, finish_job_json, flashcard_from_row, now_ms, study_set_from_row, token_from_row,
};

/// Whose artifacts: a document's (table `artifacts`) or a study set's (`study_artifacts`).
#[derive(Clone, Copy)]
enum Owner {
    Document,
    StudySet,
}

impl Owner {
    /// The table and its owner column: fixed names, never input.
    fn columns(self) -> (&'static str, &'static str) {
        match self {
            Owner::Document => ("artifacts", "document_id"),
            Owner::StudySet => ("study_artifacts", "study_id"),
        }
    }
}

impl Store {
    // documents

    /// Inserts a document and its first job in one transaction; returns the job id.
    pub async fn insert_document(&self, doc: &NewDocument, first_job: &NewJob) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, |t| {
            sqlx::query(
                "INSERT INTO documents (id, sha256, filename, size_bytes, collection, status, stage, created_at,
                                        updated_at, artifacts, callback_url, finish_job)
                 VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $7, $8, $9, $10)",
            )
            .bind(&doc.id)
            .bind(&doc.sha256)
            .bind(&doc.filename)
            .bind(doc.size_bytes)
            .bind(&doc.collection)
            .bind(&first_job.stage)
            .bind(now)
            .bind(doc.artifacts.as_ref().map(|a| serde_json::to_string(a).expect("names serialise")))
            .bind(&doc.callback_url)
            .bind(finish_job_json(doc))
            .execute(&mut **t)
            .await?;
        });
        let id = insert_job(&mut tx, first_job, now).await?;
        announce(&mut tx, &[first_job.queue.as_str()]).await?;
        tx.commit().await?;
        self.wake([first_job.queue.as_str()]);
        Ok(id)
    }

    pub async fn document(&self, id: &str) -> Result<Option<Document>> {
        on_pool!(
            &self.db,
            read | pool | {
                let row = sqlx::query("SELECT * FROM documents WHERE id = $1").bind(id).fetch_optional(pool).await?;
                row.as_ref().map(|r| document_from_row!(r)).transpose()
            }
        )
    }

    /// The most recently created documents, newest first.
    pub async fn recent_documents(&self, limit: i64) -> Result<Vec<Document>> {
        on_pool!(
            &self.db,
            read | pool | {
                let rows = sqlx::query("SELECT * FROM documents ORDER BY created_at DESC, id DESC LIMIT $1")
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(|r| document_from_row!(r)).collect()
            }
        )
    }

    /// One page of documents matching `query`, ordered by (`created_at`, `id`).
    pub async fn list_documents(&self, query: &DocumentQuery) -> Result<Vec<Document>> {
        let (after_at, after_id) = query.after.clone().unwrap_or((i64::MIN, String::new()));
        // Text parameters after $1 (created_at) and $2 (id), then the limit.
        let mut binds: Vec<String> = Vec::new();
        let mut sql = String::from("SELECT * FROM documents WHERE (created_at > $1 OR (created_at = $1 AND id > $2))");
        if let Some(status) = query.status {
            binds.push(status.as_str().to_string());
            sql += &format!(" AND status = ${}", binds.len() + 2);
        }
        if let Some(doc_type) = &query.doc_type {
            binds.push(doc_type.clone());
            sql += &format!(" AND doc_type = ${}", binds.len() + 2);
        }
        if let Some(collections) = &query.collections {
            if collections.is_empty() {
                return Ok(Vec::new());
            }
            let first = binds.len() + 3;
            binds.extend(collections.iter().cloned());
            let marks: Vec<String> = (first..first + collections.len()).map(|n| format!("${n}")).collect();
            sql += &format!(" AND collection IN ({})", marks.join(", "));
        }
        sql += &format!(" ORDER BY created_at, id LIMIT ${}", binds.len() + 3);
        on_pool!(
            &self.db,
            read | pool | {
                // Built above from placeholders only; every value is bound.
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(after_at).bind(&after_id);
                for value in &binds {
                    q = q.bind(value);
                }
                let rows = q.bind(query.limit).fetch_all(pool).await?;
                rows.iter().map(|r| document_from_row!(r)).collect()
            }
        )
    }

    /// Documents per collection and type.
    pub async fn collection_counts(&self) -> Result<Vec<CollectionCount>> {
        on_pool!(
            &self.db,
            read | pool | {
                let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(
                    "SELECT collection, doc_type, COUNT(*) FROM documents GROUP BY collection, doc_type
                     ORDER BY collection, doc_type",
                )
                .fetch_all(pool)
                .await?;
                rows.into_iter()
                    .map(|(collection, doc_type, documents)| Ok(CollectionCount { collection, doc_type, documents }))
                    .collect()
            }
        )
    }

    /// The newest document in `collection` with this content that has not failed or been
    /// cancelled: an upload of the same bytes gets it back instead of a second run.
    /// Whether any document (in any collection and state) was uploaded with these bytes.
    pub async fn upload_in_use(&self, sha256: &str) -> Result<bool> {
        on_pool!(
            &self.db,
            read | pool | {
                let row = sqlx::query("SELECT 1 FROM documents WHERE sha256 = $1 LIMIT 1")
                    .bind(sha256)
                    .fetch_optional(pool)
                    .await?;
                Ok(row.is_some())
            }
        )
    }

    pub async fn find_duplicate(&self, sha256: &str, collection: &str) -> Result<Option<Document>> {
        on_pool!(
            &self.db,
            read | pool | {
                let row = sqlx::query(
                "SELECT * FROM documents WHERE sha256 = $1 AND collection = $2 AND status NOT IN ('failed', 'cancelled')
                 ORDER BY created_at DESC, id DESC LIMIT 1",
            )
            .bind(sha256)
            .bind(collection)
            .fetch_optional(pool)
            .await?;
                row.as_ref().map(|r| document_from_row!(r)).transpose()
            }
        )
    }

    /// Pages through the per-page stages, over all documents.
    pub async fn pages_done(&self) -> Result<i64> {
        Ok(on_pool!(
            &self.db,
            read | pool | {
                sqlx::query_scalar("SELECT CAST(COALESCE(SUM(pages_done), 0) AS BIGINT) FROM documents")
                    .fetch_one(pool)
                    .await?
            }
        ))
    }

    pub async fn set_document_info(&self, id: &str, media_type: &str, pages: i64) -> Result<()> {
        on_pool!(
            &self.db,
            write | pool | {
                sqlx::query("UPDATE documents SET media_type = $1, pages = $2, updated_at = $3 WHERE id = $4")
                    .bind(media_type)
                    .bind(pages)
                    .bind(now_ms())
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
        );
        Ok(())
    }

    pub async fn set_language(&self, id: &str, language: &str) -> Result<()> {
        on_pool!(
            &self.db,
            write | pool | {
                sqlx::query("UPDATE documents SET language = $1, updated_at = $2 WHERE id = $3")
                    .bind(language)
                    .bind(now_ms())
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
        );
        Ok(())
    }

    pub async fn set_classification(&self, id: &str, doc_type: &str, score: f64) -> Result<()> {
        on_pool!(
            &self.db,
            write | pool | {
                sqlx::query("UPDATE documents SET doc_type = $1, doc_type_score = $2, updated_at = $3 WHERE id = $4")
                    .bind(doc_type)
                    .bind(score)
                    .bind(now_ms())
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
        );
        Ok(())
    }

    /// Deletes the document and everything recorded about it (jobs, figures, artifacts,
    /// flashcards); false if there was no such document.
    pub async fn delete_document(&self, id: &str) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let gone = on_tx!(&mut tx, |t| {
            for sql in [
                "DELETE FROM jobs WHERE document_id = $1",
                "DELETE FROM figures WHERE document_id = $1",
                "DELETE FROM artifacts WHERE document_id = $1",
                "DELETE FROM flashcards WHERE document_id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut **t).await?;
            }
            sqlx::query("DELETE FROM documents WHERE id = $1").bind(id).execute(&mut **t).await?.rows_affected()
        });
        tx.commit().await?;
        Ok(gone > 0)
    }

    // API tokens

    pub async fn insert_token(&self, token: &ApiToken) -> Result<()> {
        on_pool!(
            &self.db,
            write | pool | {
                sqlx::query(
                    "INSERT INTO api_tokens (id, name, hash, collections, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&token.id)
                .bind(&token.name)
                .bind(&token.hash)
                .bind(serde_json::to_string(&token.collections).expect("strings serialise"))
                .bind(token.created_at)
                .execute(pool)
                .await?;
            }
        );
        Ok(())
    }

    /// The unrevoked token with this hash.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        on_pool!(
            &self.db,
            read | pool | {
                let row = sqlx::query("SELECT * FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL")
                    .bind(hash)
                    .fetch_optional(pool)
                    .await?;
                row.as_ref().map(|r| token_from_row!(r)).transpose()
            }
        )
    }

    pub async fn tokens(&self) -> Result<Vec<ApiToken>> {
        on_pool!(
            &self.db,
            read | pool | {
                let rows = sqlx::query("SELECT * FROM api_tokens ORDER BY created_at, id").fetch_all(pool).await?;
                rows.iter().map(|r| token_from_row!(r)).collect()
            }
        )
    }

    /// False if there is no such unrevoked token.
    pub async fn revoke_token(&self, id: &str) -> Result<bool> {
        let revoked = on_pool!(
            &self.db,
            write | pool | {
                sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(now_ms())
                    .bind(id)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        );
        Ok(revoked > 0)
    }

    // stage outputs

    /// Replaces the figures of one page (idempotent re-runs).
    pub async fn replace_figures(&self, document_id: &str, page: i64, figures: &[Figure]) -> Result<()> {
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, |t| {
            sqlx::query("DELETE FROM figures WHERE document_id = $1 AND page = $2")
                .bind(document_id)
                .bind(page)
                .execute(&mut **t)
                .await?;
            for f in figures {
                sqlx::query(
                    "INSERT INTO figures (document_id, page, idx, label, score, x0, y0, x1, y1, path)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(document_id)
                .bind(page)
                .bind(f.idx)
                .bind(&f.label)
                .bind(f.score)
                .bind(f.bbox[0])
                .bind(f.bbox[1])
                .bind(f.bbox[2])
                .bind(f.bbox[3])
                .bind(&f.path)
                .execute(&mut **t)
                .await?;
            }
        });
        tx.commit().await
    }

    pub async fn figures(&self, document_id: &str) -> Result<Vec<Figure>> {
        on_pool!(
            &self.db,
            read | pool | {
                let rows = sqlx::query("SELECT * FROM figures WHERE document_id = $1 ORDER BY page, idx")
                    .bind(document_id)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(|r| figure_from_row!(r)).collect()
            }
        )
    }

    /// Inserts or replaces an artifact by name.
    pub async fn put_artifact(&self, document_id: &str, a: &Artifact) -> Result<()> {
        self.put_owned_artifact(Owner::Document, document_id, a).await
    }

    pub async fn artifacts(&self, document_id: &str) -> Result<Vec<Artifact>> {
        self.owned_artifacts(Owner::Document, document_id).await
    }

    /// Records (or replaces) an artifact of a document or a study set.
    async fn put_owned_artifact(&self, owner: Owner, id: &str, a: &Artifact) -> Result<()> {
        let (table, key) = owner.columns();
        let sql = format!(
            "INSERT INTO {table} ({key}, name, path, media_type, size_bytes) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT ({key}, name) DO UPDATE SET path = excluded.path,
                 media_type = excluded.media_type, size_bytes = excluded.size_bytes"
        );
        on_pool!(
            &self.db,
            write | pool | {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(id)
                    .bind(&a.name)
                    .bind(&a.path)
                    .bind(&a.media_type)
                    .bind(a.size_bytes)
                    .execute(pool)
                    .await?;
            }
        );
        Ok(())
    }

    async fn owned_artifacts(&self, owner: Owner, id: &str) -> Result<Vec<Artifact>> {
        let (table, key) = owner.columns();
        let sql = format!("SELECT * FROM {table} WHERE {key} = $1 ORDER BY name");
        on_pool!(
            &self.db,
            read | pool | {
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(id).fetch_all(pool).await?;
                rows.iter().map(|r| artifact_from_row!(r)).collect()
            }
        )
    }

    /// Replaces a document's flashcards (and their review state).
    pub async fn replace_flashcards(&self, document_id: &str, cards: &[Flashcard]) -> Result<()> {
        let mut tx = self.db.begin().await?;
        on_tx!(&mut tx, |t| {
            sqlx::query("DELETE FROM flashcards WHERE document_id = $1").bind(document_id).execute(&mut **t).await?;
            for c in cards {
                sqlx::query(
                    "INSERT INTO flashcards (id, document_id, front, back, page, ease, interval_days, repetitions, due)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&c.id)
                .bind(document_id)
                .bind(&c.front)
                .bind(&c.back)
                .bind(c.page)
                .bind(c.sm2.ease)
                .bind(c.sm2.interval_days as i64)
                .bind(c.sm2.repetitions as i64)
                .bind(c.sm2.due.timestamp_millis())
                .execute(&mut **t)
                .await?;
            }
        });
        tx.commit().await
    }

    pub async fn flashcard(&self, id: &str) -> Result<Option<Flashcard>> {
        on_pool!(
            &self.db,
            read | pool | {
                let row = sqlx::query("SELECT * FROM flashcards WHERE id = $1").bind(id).fetch_optional(pool).await?;
                row.as_ref().map(|r| flashcard_from_row!(r)).transpose()
            }
        )
    }

    /// Stores a card's new review state; false if there is no such card.
    pub async fn set_flashcard_schedule(&self, id: &str, sm2: &Sm2) -> Result<bool> {
        let updated = on_pool!(
            &self.db,
            write | pool | {
                sqlx::query(
                    "UPDATE flashcards SET ease = $1, interval_days = $2, repetitions = $3, due = $4 WHERE id = $5",
                )
                .bind(sm2.ease)
                .bind(sm2.interval_days as i64)
                .bind(sm2.repetitions as i64)
                .bind(sm2.due.timestamp_millis())
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
            }
        );
        Ok(updated == 1)
    }

    /// Stores a card's FSRS state; false if there is no such card.
    pub async fn set_flashcard_fsrs(&self, id: &str, fsrs: &Fsrs) -> Result<bool> {
        let updated = on_pool!(
            &self.db,
            write | pool | {
                sqlx::query(
                    "UPDATE flashcards SET fsrs_stability = $1, fsrs_difficulty = $2, fsrs_interval_days = $3,
                         fsrs_reviewed_at = $4, fsrs_due = $5 WHERE id = $6",
                )
                .bind(fsrs.stability)
                .bind(fsrs.difficulty)
                .bind(fsrs.interval_days as i64)
                .bind(fsrs.reviewed_at.timestamp_millis())
                .bind(fsrs.due.timestamp_millis())
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
            }
        );
        Ok(updated == 1)
    }

    /// A collection's cards due at `now` under `scheduler`, most overdue first. A card
    /// FSRS has not reviewed yet is due when SM-2 has it due (a new card: when it was made).
    pub async fn due_flashcards(
        &self,
        collection: &str,
        scheduler: Scheduler,
        now: i64,
        limit: i64,
    ) -> Result<Vec<Flashcard>> {
        let due = match scheduler {
            Scheduler::Sm2 => "f.due",
            Scheduler::Fsrs => "COALESCE(f.fsrs_due, f.due)",
        };
        let sql = format!(
            "SELECT f.* FROM flashcards f JOIN documents d ON d.id = f.document_id
             WHERE d.collection = $1 AND {due} <= $2 ORDER BY {due}, f.id LIMIT $3"
        );
        on_pool!(
            &self.db,
            read | pool | {
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(collection)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(|r| flashcard_from_row!(r)).collect()
            }
        )
    }

    // collection settings

    pub async fn collection_settings(&self, collection: &str) -> Result<CollectionSettings> {
        let row: Option<(String, f64)> = on_pool!(
            &self.db,
            read | pool | {
                sqlx::query_as("SELECT scheduler, desired_retention FROM collection_settings WHERE collection = $1")
                    .bind(collection)
                    .fetch_optional(pool)
                    .await?
            }
        );
        Ok(match row {
            None => CollectionSettings::default(),
            Some((scheduler, desired_retention)) => CollectionSettings {
                scheduler: Scheduler::parse(&scheduler)
                    .ok_or_else(|| StoreError::Corrupt(format!("scheduler {scheduler:?}")))?,
                desired_retention,
            },
        })
    }

    /// Forgets a collection's settings (the collection is deleted).
    pub async fn delete_collection_settings(&self, collection: &str) -> Result<()> {
        on_pool!(
            &self.db,
            write | pool | {
                sqlx::query("DELETE FROM collection_settings WHERE collection = $1")
                    .bind(collection)
                    .execute(pool)
                    .await?;
            }
        );
        Ok(())
    }

    pub async fn set_collection_settings(&self, collection: &str, settings: &CollectionSettings) -> Result<()> {
        on_pool!(
            &self.db,
            write | pool | {
                sqlx::query(
                    "INSERT INTO collection_settings (collection, scheduler, desired_retention, updated_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (collection) DO UPDATE SET scheduler = excluded.scheduler,
                         desired_retention = excluded.desired_retention, updated_at = excluded.updated_at",
                )
                .bind(collection)
                .bind(settings.scheduler.name())
                .bind(settings.desired_retention)
                .bind(now_ms())
                .execute(pool)
                .await?;
            }
        );
        Ok(())
    }

    // study sets

    /// Stores a study set and the job that makes it, in one transaction; returns the job id.
    pub async fn insert_study_set(
        &self,
        id: &str,
        collection: &str,
        request: &serde_json::Value,
        job: &NewJob,
    ) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let job_id = insert_job(&mut tx, job, now).await?;
        on_tx!(&mut tx, |t| {
            sqlx::query(
                "INSERT INTO study_sets (id, collection, request, job_id, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(collection)
            .bind(request.to_string())
            .bind(job_id)
            .bind(now)
            .execute(&mut **t)
            .await?;
        });
        announce(&mut tx, &[job.queue.as_str()]).await?;
        tx.commit().await?;
        self.wake([job.queue.as_str()]);
        Ok(job_id)
    }

    pub async fn study_set(&self, id: &str) -> Result<Option<StudySet>> {
        on_pool!(
            &self.db,
            read | pool | {
                let row = sqlx::query("SELECT * FROM study_sets WHERE id = $1").bind(id).fetch_optional(pool).await?;
                row.as_ref().map(|r| study_set_from_row!(r)).transpose()
            }
        )
    }

    /// A collection's study sets, newest first.
    pub async fn study_sets(&self, collection: &str) -> Result<Vec<StudySet>> {
        on_pool!(
            &self.db,
            read | pool | {
                let rows = sqlx::query("SELECT * FROM study_sets WHERE collection = $1 ORDER BY created_at DESC, id")
                    .bind(collection)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(|r| study_set_from_row!(r)).collect()
            }
        )
    }

    pub async fn set_study_progress(&self, id: &str, done: i64, total: i64) -> Result<()> {
        on_pool!(
            &self.db,
            write | pool | {
                sqlx::query("UPDATE study_sets SET steps_done = $1, steps_total = $2 WHERE id = $3")
                    .bind(done)
                    .bind(total)
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
        );
        Ok(())
    }

    pub async fn put_study_artifact(&self, study_id: &str, a: &Artifact) -> Result<()> {
        self.put_owned_artifact(Owner::StudySet, study_id, a).await
    }

    pub async fn study_artifacts(&self, study_id: &str) -> Result<Vec<Artifact>> {
        self.owned_artifacts(Owner::StudySet, study_id).await
    }

    /// Deletes a study set, its artifacts' rows and its job; false if there was none.
    pub async fn delete_study_set(&self, id: &str) -> Result<bool> {
        let mut tx = self.db.begin().await?;
        let gone = on_tx!(&mut tx, |t| {
            sqlx::query("DELETE FROM study_artifacts WHERE study_id = $1").bind(id).execute(&mut **t).await?;
            sqlx::query("DELETE FROM jobs WHERE id = (SELECT job_id FROM study_sets WHERE id = $1)")
                .bind(id)
                .execute(&mut **t)
                .await?;
            sqlx::query("DELETE FROM study_sets WHERE id = $1").bind(id).execute(&mut **t).await?.rows_affected()
        });
        tx.commit().await?;
        Ok(gone > 0)
    }
}
