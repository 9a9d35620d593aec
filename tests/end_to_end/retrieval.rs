//! Retrieval on a real document with the real tokenizer, fastembed model and LanceDB:
//! structure-aware chunks, idempotent re-indexing, deletion, the three search modes,
//! provenance, extractive answers, collections, classification and table maintenance.

use crate::common;

use lectern_document::ask::{AskRequest, ask};
use lectern_document::config::Stage;
use lectern_document::index::Mode;
use lectern_document::search::{SearchRequest, search};
use lectern_document::stages::{Payload, ingest};

async fn index_document(ctx: &lectern_document::context::Context, name: &str, collection: &str) -> String {
    let id = ingest::submit_file_to(ctx, &common::fixture(name), collection).await.unwrap().0;
    for stage in [Stage::Ingest, Stage::Render, Stage::Layout, Stage::Ocr, Stage::Chunk, Stage::Embed] {
        lectern_document::pipeline::run_stage(ctx, stage, &Payload::document(&id)).await.unwrap();
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexing_searching_and_deleting_a_document() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context(dir.path()).await;
    let id = index_document(&ctx, "paper.pdf", "default").await;
    let index = ctx.index().await.unwrap();

    // Chunks: token-sized, with provenance on the page and heading paths from titles.
    let chunks = lectern_document::stages::chunk::load(&ctx, &id).await.unwrap();
    let pages = ctx.workdir(&id).load_pages().unwrap();
    assert!(chunks.len() >= 5, "{} chunks", chunks.len());
    assert!(chunks.iter().all(|c| c.tokens as usize <= ctx.pipeline.chunk.max_tokens), "token budget");
    assert!(chunks.iter().any(|c| !c.heading_path.is_empty()), "titles become heading paths");
    // Counted word by word, remembered: the tokenizer's own count of the embedded text.
    let tokenizer = ctx.tokenizer().await.unwrap();
    for c in &chunks {
        let text = format!("{} {}", c.heading_path.join(" > "), c.text);
        assert_eq!(c.tokens as usize, tokenizer.encode(text.trim(), false).unwrap().len(), "{c:?}");
    }
    for c in &chunks {
        for span in &c.spans {
            let page = &pages[span.page as usize - 1];
            let b = span.bbox;
            assert!(b[0] >= 0.0 && b[1] >= 0.0 && b[2] <= page.width + 0.5 && b[3] <= page.height + 0.5, "{c:?}");
            assert!(b[0] < b[2] && b[1] < b[3], "{c:?}");
        }
    }

    // Re-indexing leaves exactly one set of rows with the same ids.
    let rows = index.count("default", Some(&id)).await.unwrap();
    assert_eq!(rows, chunks.len());
    for stage in [Stage::Chunk, Stage::Embed] {
        lectern_document::pipeline::run_stage(&ctx, stage, &Payload::document(&id)).await.unwrap();
    }
    assert_eq!(lectern_document::stages::chunk::load(&ctx, &id).await.unwrap(), chunks, "same chunks and ids");
    assert_eq!(index.count("default", Some(&id)).await.unwrap(), rows);

    // A re-index with fewer chunks drops the rest.
    let two: Vec<String> = chunks[..2].iter().map(|c| c.embedding_text()).collect();
    let vectors = ctx.embedder().await.unwrap().embed(two).await.unwrap();
    let meta = lectern_document::index::DocumentMeta {
        collection: "default",
        document_id: &id,
        doc_type: "paper",
        model: "minilm",
    };
    index.replace_document(&meta, &chunks[..2], &vectors).await.unwrap();
    assert_eq!(index.count("default", Some(&id)).await.unwrap(), 2);
    lectern_document::pipeline::run_stage(&ctx, Stage::Embed, &Payload::document(&id)).await.unwrap();
    assert_eq!(index.count("default", Some(&id)).await.unwrap(), rows);

    // Every mode finds the page; hits carry provenance.
    let query = "managing geospatial data shared by several organizations";
    for mode in [Mode::Vector, Mode::Text, Mode::Hybrid] {
        let hits = common::search(&ctx, query, mode).await;
        let top = hits.first().unwrap_or_else(|| panic!("{mode:?}: no hits"));
        assert_eq!((top.document_id.as_str(), top.page), (id.as_str(), 2), "{mode:?}: {hits:#?}");
        assert!(top.bbox[2] > top.bbox[0] && top.bbox[3] <= pages[1].height + 0.5);
    }
    let text_only = common::search(&ctx, "smallest common denominator", Mode::Text).await;
    assert!(text_only[0].text.contains("smallest common denominator"), "{text_only:#?}");

    // Ask quotes the sentence that answers, cited by file name and page; an unrelated
    // question is "not found" and cites nothing, though passages were retrieved.
    let question =
        AskRequest::new("Which approach is best for distributing geospatial information among organizations?");
    let answer = ask(&ctx, &question, &mut |_| {}).await.unwrap();
    let top = &answer.citations[0];
    assert!(answer.found && answer.method == "extractive", "{answer:#?}");
    assert_eq!((top.document_id.as_str(), top.name.as_str(), top.page), (id.as_str(), "paper.pdf", 2));
    assert!(answer.answer.contains("Linear Reference System"), "{answer:#?}");
    assert_eq!(Some(&answer.answer), top.sentence.as_ref());
    let unrelated = AskRequest::new("How long should sourdough bread rise before baking?");
    let answer = ask(&ctx, &unrelated, &mut |_| {}).await.unwrap();
    assert!(!answer.found && answer.citations.is_empty() && !answer.passages.is_empty(), "{answer:#?}");
    assert_eq!(answer.answer, lectern_document::ask::NOT_FOUND);

    // The document got a type, and the type filters search.
    let doc = ctx.store.document(&id).await.unwrap().unwrap();
    let doc_type = doc.doc_type.clone().expect("classified");
    assert!(doc.doc_type_score.is_some());
    let mut req = SearchRequest::new(query, 5, Mode::Vector);
    req.doc_type = Some(doc_type.clone());
    assert!(!search(&ctx, &req).await.unwrap().is_empty());
    req.doc_type = Some(format!("not-{doc_type}"));
    assert!(search(&ctx, &req).await.unwrap().is_empty());
    req.doc_type = None;
    req.document_ids = Some(vec!["someone-else".into()]);
    assert!(search(&ctx, &req).await.unwrap().is_empty());

    // Collections are separate tables.
    let other = index_document(&ctx, "scan.pdf", "archive").await;
    assert_eq!(index.count("archive", Some(&other)).await.unwrap(), index.count("archive", None).await.unwrap());
    assert_eq!(index.count("default", Some(&other)).await.unwrap(), 0);
    let mut req = SearchRequest::new("Emanuel Goldberg developed a machine", 5, Mode::Hybrid);
    req.collection = "archive".into();
    let top = search(&ctx, &req).await.unwrap().remove(0);
    assert_eq!((top.hit.document_id, top.name), (other, "scan.pdf".to_string()), "hits carry the file name");

    // Maintenance builds the full-text index and compacts.
    index.maintain("default").await.unwrap();
    let stats = index.stats("default").await.unwrap().unwrap();
    assert_eq!(stats.rows, rows);
    assert!(stats.indices.iter().any(|i| i.contains("FTS") || i.contains("Inverted")), "{stats:?}");
    assert_eq!(stats.fragments, 1, "compacted: {stats:?}");

    // Rows added after the full-text index was built are still found by text search.
    let scan = index_document(&ctx, "scan.pdf", "default").await;
    let hits = common::search(&ctx, "Emanuel Goldberg developed a machine", Mode::Text).await;
    assert_eq!(hits.first().map(|h| h.document_id.as_str()), Some(scan.as_str()), "{hits:#?}");

    // Deleting removes the chunks, the rows and the work directory.
    assert!(lectern::status::delete_document(&ctx, &id).await.unwrap());
    assert_eq!(index.count("default", Some(&id)).await.unwrap(), 0);
    assert!(ctx.store.document(&id).await.unwrap().is_none());
    assert!(!ctx.settings.document_dir(&id).exists());
    assert!(common::search(&ctx, query, Mode::Hybrid).await.iter().all(|h| h.document_id != id));
    assert!(index.count("default", Some(&scan)).await.unwrap() > 0, "other documents stay");
    assert!(!lectern::status::delete_document(&ctx, &id).await.unwrap(), "already gone");
}

/// From [`ANN_MIN_ROWS`] rows maintenance builds the configured kind of vector index, and
/// replaces one of another kind (a table indexed before the default changed); the index's
/// top 10 are exact search's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_builds_the_configured_vector_index_and_replaces_another() {
    use lectern_document::index::{ANN_MIN_ROWS, AnnKind, AnnParams, DocumentMeta, Query, VectorIndex};
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let index = VectorIndex::open(dir.path()).await.unwrap();
    // Rows gather around topics, as texts' embeddings do: a topic's direction plus noise.
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let topics: Vec<Vec<f32>> = (0..200).map(|_| (0..32).map(|_| rng.random_range(-1.0f32..1.0)).collect()).collect();
    let mut unit = || {
        let topic = &topics[rng.random_range(0..topics.len())];
        let mut v: Vec<f32> = topic.iter().map(|x| x + rng.random_range(-0.3f32..0.3)).collect();
        lectern_document::engines::embedder::normalise(&mut v);
        v
    };
    const PER_DOCUMENT: usize = 5_000;
    for d in 0..ANN_MIN_ROWS.div_ceil(PER_DOCUMENT) {
        let document_id = format!("d{d}");
        let chunks = common::chunks(&document_id, PER_DOCUMENT);
        let vectors: Vec<Vec<f32>> = (0..PER_DOCUMENT).map(|_| unit()).collect();
        let meta = DocumentMeta { collection: "ann", document_id: &document_id, doc_type: "test", model: "test" };
        index.replace_document(&meta, &chunks, &vectors).await.unwrap();
    }
    let vector_index = |indices: Vec<String>| indices.into_iter().find(|i| i.starts_with("IVF")).unwrap_or_default();

    index.set_ann(AnnParams { kind: AnnKind::IvfPq, ..AnnParams::default() });
    index.maintain("ann").await.unwrap();
    assert_eq!(vector_index(index.stats("ann").await.unwrap().unwrap().indices), "IVF_PQ");

    index.set_ann(AnnParams::default());
    index.maintain("ann").await.unwrap();
    assert_eq!(vector_index(index.stats("ann").await.unwrap().unwrap().indices), "IVF_SQ");
    let (mut found, mut wanted) = (0, 0);
    for _ in 0..20 {
        let vector = unit();
        let query = |exact| Query {
            collection: "ann",
            text: "",
            vector: Some(&vector),
            top_k: 10,
            mode: Mode::Vector,
            document_ids: None,
            doc_type: None,
            exact,
        };
        let exact: Vec<String> = index.search(&query(true)).await.unwrap().into_iter().map(|h| h.chunk_id).collect();
        let ann = index.search(&query(false)).await.unwrap();
        found += ann.iter().filter(|h| exact.contains(&h.chunk_id)).count();
        wanted += exact.len();
    }
    assert!(found as f64 >= 0.9 * wanted as f64, "recall@10 {found} of {wanted}");
}
