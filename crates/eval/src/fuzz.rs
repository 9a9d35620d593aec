//! `lectern-eval fuzz TARGET --seconds N`: mutation fuzzing of the parsers Lectern wrote, on
//! the stable toolchain (cargo-fuzz needs nightly, which this project's machines cannot
//! fetch; cargo-afl would rebuild the whole dependency stack instrumented). Without compiler
//! coverage, an input joins the corpus when it reaches an outcome not seen before (success,
//! or an error message with its digits blanked): a coarse stand-in for new coverage.
//!
//! Each input is written to `OUT/current` before it runs, so an input that aborts the
//! process (stack overflow) is found by `scripts/fuzz.sh`, which restarts the fuzzer. A
//! panic is caught and its input saved as `OUT/crash-<hash>`; an input that runs over 5 s is
//! saved as `OUT/slow-<hash>`.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lectern_document::config::LimitsConfig;
use lectern_document::formats::{office, raster, sniff};
use lectern_document::model::workdir::WorkDir;

/// What can be fuzzed.
pub const TARGETS: [&str; 7] = ["sniff", "docx", "pptx", "image", "page-json", "citations", "sentences"];

/// Runs `target` for `seconds`; returns (executions, panics, slow inputs).
pub fn run(target: &str, seconds: u64, out: &Path, seed: u64) -> anyhow::Result<(u64, usize, usize)> {
    anyhow::ensure!(TARGETS.contains(&target), "unknown target {target:?}; choose from {}", TARGETS.join(", "));
    std::fs::create_dir_all(out)?;
    let scratch = scratch_dir(out)?;
    let mut corpus = seeds(target)?;
    let mut outcomes: HashSet<String> = HashSet::new();
    let mut rng = Rng(seed | 1);
    let (mut execs, mut panics, mut slow) = (0u64, 0, 0);
    // Panics are caught and counted; keep their messages off the terminal.
    std::panic::set_hook(Box::new(|_| {}));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let mut input = corpus[rng.below(corpus.len())].clone();
        for _ in 0..1 + rng.below(6) {
            let other = &corpus[rng.below(corpus.len())];
            mutate(&mut input, other, &mut rng, target == "page-json");
        }
        std::fs::write(out.join("current"), &input)?;
        let start = Instant::now();
        let result = std::panic::catch_unwind(|| execute(target, &input, &scratch));
        execs += 1;
        let name = format!("{:016x}", hash(&input));
        match result {
            Err(_) => {
                panics += 1;
                std::fs::write(out.join(format!("crash-{name}")), &input)?;
            }
            Ok(outcome) => {
                if outcomes.insert(outcome) && corpus.len() < 5_000 {
                    corpus.push(input.clone());
                }
            }
        }
        if start.elapsed() > Duration::from_secs(5) {
            slow += 1;
            std::fs::write(out.join(format!("slow-{name}")), &input)?;
        }
    }
    let _ = std::panic::take_hook();
    std::fs::remove_file(out.join("current"))?;
    let _ = std::fs::remove_dir_all(&scratch);
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(out.join("runs.tsv"))?;
    writeln!(log, "{target}\t{seconds}\t{execs}\t{panics}\t{slow}\t{}\t{}", outcomes.len(), corpus.len())?;
    println!(
        "{target}: {execs} executions in {seconds} s, {} distinct outcomes, corpus {}, {panics} panics, {slow} slow",
        outcomes.len(),
        corpus.len()
    );
    Ok((execs, panics, slow))
}

/// `OUT/scratch`, where targets that read from files (and render pages) write.
fn scratch_dir(out: &Path) -> std::io::Result<PathBuf> {
    let dir = out.join("scratch");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs one input; the outcome (a coarse summary of what it read, or the error with its
/// digits blanked) classifies it.
fn execute(target: &str, input: &[u8], scratch: &Path) -> String {
    let outcome: Result<String, String> = match target {
        "sniff" => Ok(format!("{:?} {}", sniff::sniff(input), sniff::describe(input))),
        "docx" => office_package(scratch, "word/document.xml", input, sniff::MediaType::Docx),
        "pptx" => office_package(scratch, "ppt/slides/slide1.xml", input, sniff::MediaType::Pptx),
        "image" => image(scratch, input),
        "page-json" => page_json(scratch, input),
        "citations" => Ok(citations(input).matches('[').count().min(20).to_string()),
        "sentences" => Ok(lectern_document::generate::text::split_sentences(&String::from_utf8_lossy(input))
            .len()
            .min(50)
            .to_string()),
        _ => unreachable!("checked in run"),
    };
    match outcome {
        Ok(detail) => format!("ok {detail}"),
        Err(e) => e.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).take(80).collect(),
    }
}

/// A DOCX or PPTX around `xml` (the part fuzzed), read as the pipeline reads it.
fn office_package(scratch: &Path, part: &str, xml: &[u8], media: sniff::MediaType) -> Result<String, String> {
    let path = scratch.join("input.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).map_err(|e| e.to_string())?);
    let options = zip::write::SimpleFileOptions::default();
    let mut add = |name: &str, bytes: &[u8]| -> Result<(), String> {
        zip.start_file(name, options).map_err(|e| e.to_string())?;
        zip.write_all(bytes).map_err(|e| e.to_string())
    };
    add("[Content_Types].xml", b"<Types/>")?;
    if media == sniff::MediaType::Pptx {
        add("ppt/presentation.xml", PRESENTATION.as_bytes())?;
        add("ppt/_rels/presentation.xml.rels", PRESENTATION_RELS.as_bytes())?;
    }
    add(part, xml)?;
    zip.finish().map_err(|e| e.to_string())?;
    let err = |e: lectern_document::error::StageError| e.to_string();
    let kind = office::kind(&path).map_err(err)?;
    let mut package = office::Package::open(&path).map_err(err)?;
    let pages = office::page_count(&mut package, media).map_err(err)?;
    let laid = office::read(&mut package, media, 1..=pages.min(3)).map_err(err)?;
    Ok(format!("{kind:?} {} {}", pages.min(5), laid.len()))
}

const PRESENTATION: &str = r#"<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><p:sldIdLst><p:sldId id="256" r:id="rId1"/></p:sldIdLst></p:presentation>"#;
const PRESENTATION_RELS: &str = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide" Target="slides/slide1.xml"/></Relationships>"#;

/// Header checks, then decoding the first page when it is small.
fn image(scratch: &Path, bytes: &[u8]) -> Result<String, String> {
    let media = sniff::sniff(bytes).ok_or("not an image")?;
    if !matches!(media, sniff::MediaType::Png | sniff::MediaType::Jpeg | sniff::MediaType::Tiff) {
        return Err("not an image".into());
    }
    let path = scratch.join("input.img");
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    let limits = LimitsConfig::default();
    let pages = raster::check(&path, media, &limits).map_err(|e| e.to_string())?;
    let image = raster::page(&path, media, 1).map_err(|e| e.to_string())?;
    Ok(format!("{} {:?} {}", pages.min(5), image.color(), raster::is_blank(&image.to_luma8())))
}

/// A page file as the pipeline reads it, exported as Markdown and JSON (blocks, reading
/// order, tables, hyphen joins).
fn page_json(scratch: &Path, bytes: &[u8]) -> Result<String, String> {
    let workdir = WorkDir::new(scratch, "fuzz");
    std::fs::create_dir_all(workdir.pages_dir()).map_err(|e| e.to_string())?;
    std::fs::write(workdir.page_file(1), bytes).map_err(|e| e.to_string())?;
    let source = lectern_document::export::Source {
        document_id: "fuzz",
        filename: "fuzz.pdf",
        language: None,
        figures: &[],
        figure_base: "",
    };
    let mut out = Vec::new();
    for format in [lectern_document::export::Format::Markdown, lectern_document::export::Format::Json] {
        lectern_document::export::write(&workdir, &source, format, &mut out).map_err(|e| e.to_string())?;
    }
    Ok(String::new())
}

/// The streaming citation filter, fed the text in pieces cut where the input's first byte says.
fn citations(bytes: &[u8]) -> String {
    let Some((&cut, text)) = bytes.split_first() else { return String::new() };
    let text = String::from_utf8_lossy(text);
    let mut filter = lectern_document::ask::CitationFilter::new(cut as usize % 12);
    let mut out = String::new();
    let mut rest: &str = &text;
    let step = (cut as usize % 7) + 1;
    while !rest.is_empty() {
        let mut end = step.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        out.push_str(&filter.push(&rest[..end]));
        rest = &rest[end..];
    }
    out.push_str(&filter.finish());
    out
}

/// Starting inputs: the fixtures (and hostile inputs) of the target's kind.
fn seeds(target: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixture = |name: &str| std::fs::read(root.join("fixtures").join(name));
    let part = |file: &str, part: &str| -> anyhow::Result<Vec<u8>> {
        let mut zip = zip::ZipArchive::new(std::fs::File::open(root.join("fixtures").join(file))?)?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_name(part)?, &mut bytes)?;
        Ok(bytes)
    };
    let mut seeds = match target {
        "sniff" => {
            vec![fixture("paper.pdf")?[..4096].to_vec(), fixture("page.png")?[..512].to_vec(), b"PK\x03\x04".to_vec()]
        }
        "docx" => vec![part("headings.docx", "word/document.xml")?, part("tables.docx", "word/document.xml")?],
        "pptx" => vec![part("slides.pptx", "ppt/slides/slide1.xml")?],
        "image" => vec![fixture("page.png")?, fixture("page.jpg")?, tiny_tiff()],
        "page-json" => vec![PAGE.as_bytes().to_vec()],
        "citations" => vec![b"\x05It is [1] and [2][9] or [ 3 ] but not [x] nor [12345678].".to_vec()],
        "sentences" => vec![b"Dr. Smith went to Washington. It rained! Did it? Yes (see Fig. 2.1) e.g. this.".to_vec()],
        _ => Vec::new(),
    };
    seeds.retain(|s| !s.is_empty());
    Ok(seeds)
}

/// A 2-page, 4×4 grey TIFF.
fn tiny_tiff() -> Vec<u8> {
    let mut out = b"II*\0".to_vec();
    out.extend(8u32.to_le_bytes());
    let ifd = |next: u32, strip: u32| {
        let mut v = Vec::new();
        let tags: [(u16, u16, u32); 8] = [
            (256, 4, 4),
            (257, 4, 4),
            (258, 3, 8),
            (259, 3, 1),
            (262, 3, 1),
            (273, 4, strip),
            (278, 4, 4),
            (279, 4, 16),
        ];
        v.extend((tags.len() as u16).to_le_bytes());
        for (tag, kind, value) in tags {
            v.extend(tag.to_le_bytes());
            v.extend(kind.to_le_bytes());
            v.extend(1u32.to_le_bytes());
            v.extend(value.to_le_bytes());
        }
        v.extend(next.to_le_bytes());
        v
    };
    let size = 2 + 8 * 12 + 4;
    let strip = 8 + 2 * size as u32;
    out.extend(ifd(8 + size as u32, strip));
    out.extend(ifd(0, strip));
    out.extend([0u8, 64, 128, 255].repeat(4));
    out
}

const PAGE: &str = r#"{"number":1,"width":612.0,"height":792.0,"source":"text_layer","words":[
{"text":"1","bbox":[72.0,40.0,80.0,50.0],"conf":null},
{"text":"Intro-","bbox":[72.0,100.0,120.0,112.0],"conf":null},
{"text":"duction","bbox":[72.0,114.0,130.0,126.0],"conf":0.9},
{"text":"a","bbox":[72.0,200.0,80.0,212.0],"conf":null},{"text":"b","bbox":[300.0,200.0,310.0,212.0],"conf":null},
{"text":"c","bbox":[72.0,214.0,80.0,226.0],"conf":null},{"text":"d","bbox":[300.0,214.0,310.0,226.0],"conf":null},
{"text":"Right","bbox":[330.0,100.0,380.0,112.0],"conf":null}],
"layout_image":null,"ocr_image":null,"regions":[
{"label":"title","score":0.9,"bbox":[70.0,98.0,140.0,128.0],"level":1},
{"label":"table","score":0.8,"bbox":[70.0,198.0,320.0,228.0],"level":null},
{"label":"text","score":0.7,"bbox":[328.0,98.0,390.0,114.0],"level":null},
{"label":"header","score":0.7,"bbox":[70.0,38.0,90.0,52.0],"level":null}],
"ocr_confidence":null,"ocr_language":null,"images":[]}"#;

fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// xorshift64*: the fuzzer's choices, repeatable from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545f4914f6cdd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [&[u8]; 12] = [
    b"\0",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\xff\xff\xff\xff",
    b"\0\0\0\x80",
    b"\xff\xff\xff\x7f",
    b"1e39",
    b"-1e39",
    b"<a><a><a><a><a><a><a><a>",
    b"&amp;&#0;&#x10FFFF;",
    b"\xe2\x80\xae",
];

/// One random change: flip, overwrite with an interesting value, insert, delete, duplicate,
/// splice with `other`, truncate; for JSON, also replace a number with an extreme one.
fn mutate(input: &mut Vec<u8>, other: &[u8], rng: &mut Rng, json: bool) {
    let len = input.len();
    let at = rng.below(len + 1);
    match rng.below(if json { 8 } else { 7 }) {
        0 if len > 0 => input[at.min(len - 1)] ^= 1 << rng.below(8),
        1 => {
            let value = INTERESTING[rng.below(INTERESTING.len())];
            let end = (at + value.len()).min(len);
            input.splice(at..end, value.iter().copied());
        }
        2 => {
            let n = 1 + rng.below(16);
            input.splice(at..at, (0..n).map(|_| rng.next() as u8));
        }
        3 if len > 0 => {
            let end = (at + 1 + rng.below(64)).min(len);
            input.drain(at.min(len)..end);
        }
        4 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(256)).min(len);
            let copy = input[start..end].to_vec();
            let most = if rng.below(8) == 0 { 1000 } else { 4 };
            let repeat = 1 + rng.below(most);
            input.splice(at..at, copy.repeat(repeat));
        }
        5 if !other.is_empty() => {
            let start = rng.below(other.len());
            let end = (start + 1 + rng.below(512)).min(other.len());
            input.splice(at..at, other[start..end].iter().copied());
        }
        6 => input.truncate(at),
        7 => {
            // A number in the JSON (a digit run) becomes an extreme or odd one.
            let digits: Vec<usize> = (0..len).filter(|&i| input[i].is_ascii_digit()).collect();
            if let Some(&start) = digits.get(rng.below(digits.len().max(1))) {
                let end = (start..len).find(|&i| !(input[i].is_ascii_digit() || input[i] == b'.')).unwrap_or(len);
                let value: &[u8] =
                    [&b"1e39"[..], b"-1e39", b"0", b"-0.0", b"4294967296", b"99999999999999999999"][rng.below(6)];
                input.splice(start..end, value.iter().copied());
            }
        }
        _ => input.push(rng.next() as u8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs the fuzzer found crashes with (`fixtures/fuzz/TARGET-*`), run again: each must
    /// reach an outcome (it was a stack overflow that aborted the process).
    #[test]
    fn past_findings_run_to_an_outcome() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/fuzz");
        let scratch = tempfile::tempdir().unwrap();
        let mut ran = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name == "README.md" {
                continue;
            }
            let target = TARGETS.iter().find(|t| name.starts_with(&format!("{t}-"))).expect("named TARGET-…");
            let outcome = execute(target, &std::fs::read(&path).unwrap(), scratch.path());
            println!("{name}: {outcome}");
            ran += 1;
        }
        assert!(ran >= 1);
    }
}
