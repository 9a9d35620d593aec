//! The child process the workers run pdfium in (see `lectern_document::engines::pdfium_child`).

fn main() -> std::process::ExitCode {
    lectern_document::engines::pdfium_child::child_main()
}
