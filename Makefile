# Lectern: set-up, demo and tests. `make demo` and `make test` work from a fresh clone on
# Debian with only the Rust toolchain, Python 3 + pip and apt.

# Build outside the clone so CI and later clones reuse it; an empty cache still works.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/lectern/target
# apalis-style sqlx macros must never reach for a database at build time.
export SQLX_OFFLINE := true
# One OpenMP thread per tesseract engine.
export OMP_THREAD_LIMIT := 1
# No RUSTFLAGS: they are part of every artifact's hash, so a flag that depended on what
# set-up had installed (it picked mold once installed) made the second run rebuild all.

LECTERN := $(CARGO_TARGET_DIR)/debug/lectern
LECTERN_EVAL := $(CARGO_TARGET_DIR)/debug/lectern-eval
DEMO_DATA := ./lectern-data
# Benches select the whole workspace so dependency features unify exactly as in `make build`
# and reuse its artifacts; `-p lectern` alone resolves other features and rebuilds LanceDB's stack.
BENCH := cargo bench --profile dev --workspace

.PHONY: setup build demo test fmt hostile bench-queue bench-embed bench-search bench-load bench-generate bench-document eval-retrieval eval-ask eval-fields bench-fidelity eval-study eval-study-terms eval-ocr eval-figures bench-pages bench-scans bench-text-layer bench-course

setup:
	./scripts/setup.sh

# Built together with the tests so both share one feature resolution (and one build).
build: setup
	cargo build --workspace --bins --tests

# The main job on the embedded default: a born-digital PDF and a scanned page.
demo: build
	rm -rf $(DEMO_DATA)
	$(LECTERN) --data-dir $(DEMO_DATA) process fixtures/paper.pdf fixtures/scan.pdf
	$(LECTERN) --data-dir $(DEMO_DATA) search "managing geospatial data shared by several organizations"

# Structure and style first (the document crate's layers, formatting, clippy with warnings
# as errors), then the hostile-input corpus (fixtures/hostile/) and the binaries (workers
# start lectern-pdfium) with the tests, in one feature resolution (`--bins` alone resolves
# other features and builds LanceDB's stack a second time), then every test of every crate.
# PostgreSQL (scripts/pg.sh: a private cluster on a free local port) backs the PostgreSQL
# half of the store conformance suite and the multi-process tests; scripts/s3.sh's S3
# server the object-store tests. Last, tests/hosts.py: serve and two workers in network
# namespaces sharing nothing but PostgreSQL and S3 (root).
test: setup
	python3 scripts/layers.py
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	python3 fixtures/make_hostile.py
	cargo build --workspace --bins --tests
	LECTERN_TEST_PG_URL=$$(./scripts/pg.sh start) LECTERN_TEST_S3_URL=$$(./scripts/s3.sh start) \
		cargo test --workspace --no-fail-fast -- --test-threads=2
	$$(./scripts/s3.sh python) tests/hosts.py

fmt:
	cargo fmt --all

# Every hostile input through `lectern process` with a time and memory budget: outcome
# against fixtures/hostile/manifest.tsv, seconds, peak RSS of the process and its children.
hostile: build
	python3 fixtures/make_hostile.py
	python3 scripts/hostile.py --lectern $(LECTERN)

# No-op job throughput, ours vs apalis, SQLite and PostgreSQL. Built in the dev profile,
# whose hot crates (tokio, sqlx, SQLite, serde_json, futures) are optimised (Cargo.toml), so
# it reuses the test build instead of a 30-minute release build of lancedb.
BENCH_ARGS ?= --jobs 20000 --concurrency 8 --runs 3 --accumulated 200000 --apalis-runs 1
bench-queue: setup
	LECTERN_BENCH_PG_URL=$$(./scripts/pg.sh start) cargo bench --profile dev -p lectern-queue --bench queue_throughput -- $(BENCH_ARGS)

# Embedding throughput on real corpus chunks: our embed stage vs fastembed's plain
# embed(256) and a hand-written ONNX Runtime loop, same model and threads, same run.
bench-embed: setup
	$(BENCH) --bench embedding -- --chunks 1024 --runs 3 --threads 2

# LanceDB at 100k chunks: ingest rate, p50/p99 search latency per mode (flat, then IVF-PQ),
# and table size / version count over 1,000 re-indexings with maintenance.
bench-search: setup
	$(BENCH) --bench search

# Recall@5 of vector, text and hybrid search on the question set over ../shared/corpus.
eval-retrieval: build
	rm -rf ./lectern-eval
	$(LECTERN_EVAL) --data-dir ./lectern-eval retrieval --questions benches/quality/retrieval_questions.toml --corpus ../shared/corpus

# Export fidelity beside Kreuzberg and pdftotext on the corpus: text CER, two-column
# sentences, headings vs outlines, table cells (benches/fidelity.py; peers from scripts/peers.sh).
bench-fidelity: build
	TESSDATA_PREFIX=/usr/share/tesseract-ocr/5/tessdata $$(./scripts/peers.sh) benches/fidelity.py

# Scans beside OCRmyPDF (plain and --rotate-pages --deskew), the tesseract CLI and Kreuzberg:
# CER per tilt group and CPU per page, one run (scans made from corpus pages by make_skewed.py).
# The text-layer path (ingest, render, chunk) beside Kreuzberg on the born-digital corpus.
bench-text-layer: build
	py=$$(./scripts/peers.sh) && $$py benches/text_layer.py

bench-scans: build
	py=$$(./scripts/peers.sh) && $$py scripts/make_skewed.py --corpus ../shared/corpus ./lectern-scans && \
	PATH=$$(dirname $$py):$$PATH TESSDATA_PREFIX=/usr/share/tesseract-ocr/5/tessdata $$py benches/scans.py ./lectern-scans

# Extractive answers on the ask question set: top-1/top-3 answer sentence, out-of-scope
# "not found", latency, per "not found" threshold.
# Fields of invoices and a form against labels, born-digital and OCR'd, beside invoice2data.
eval-fields: build
	$$(./scripts/peers.sh) benches/fields.py --lectern $(LECTERN)

eval-ask: build
	rm -rf ./lectern-eval-ask
	$(LECTERN_EVAL) --data-dir ./lectern-eval-ask ask --questions benches/quality/ask_questions.toml --corpus ../shared/corpus

# Quiz answers and flashcard fronts against the authors' own key terms (book indexes, paper
# keywords), common-word blanks, front/back matter, malformed fronts. Keeps the processed
# documents in ./lectern-study-terms between runs (delete it to process them again).
eval-study-terms: build
	$(LECTERN_EVAL) --data-dir ./lectern-study-terms study-terms --set benches/quality/study_terms.toml --corpus ../shared/corpus

# OCR decisions on every corpus PDF; OCR character error rate on born-digital pages.
eval-ocr: build
	rm -rf ./lectern-eval-ocr
	$(LECTERN_EVAL) --data-dir ./lectern-eval-ocr ocr --corpus ../shared/corpus --pages 3

# Figure recall on hand-counted corpus pages (benches/quality/figures.toml).
eval-figures: build
	rm -rf ./lectern-eval-figures
	$(LECTERN_EVAL) --data-dir ./lectern-eval-figures figures --corpus ../shared/corpus

# Upload latency: 1 MiB PDFs at 200/s for 10 s over loopback while the workers run.
bench-load: setup
	$(BENCH) --bench ingest_load -- --rate 200 --seconds 10 --runs 3

# Generation time per document (material, plan, write; the stage vs the embed stage).
bench-generate: setup
	$(BENCH) --bench generate -- --runs 3

# A course's study set over three corpus documents: the study job vs the documents' own
# generate stages (same run), a worker's wall time and peak RSS, and checks on its output
# (the .apkg imported by Anki's own importer from the peers' venv).
bench-course: setup
	LECTERN_PEERS_PYTHON=$$(./scripts/peers.sh) $(BENCH) --bench course -- --runs 3

# OCR vs the tesseract CLI, layout vs raw ONNX Runtime, on the same pages.
bench-document: setup
	$(BENCH) --bench document -- --runs 3

# Pages/s of ingest, render, layout and OCR with 1 and 2 worker processes (48 pages);
# then peak memory of one worker through the whole pipeline on a 1,000-page PDF, and of
# exporting that document as Markdown and JSON.
bench-pages: setup
	$(BENCH) --bench pages -- --pages 48 --processes 1,2
	$(BENCH) --bench pages -- --pages 1000 --processes 1 --stages all --export

# Study material of a manual, a two-column paper and a slide deck: checks and PNG previews.
eval-study: build
	rm -rf ./lectern-study
	$(LECTERN_EVAL) --data-dir ./lectern-study study ../shared/corpus/pdf_text/R-intro.pdf \
		../shared/corpus/pdf_text/elsarticle-elstest-5p.pdf ../shared/corpus/pdf_text/beamer-conference-talk.pdf
