use clap::Parser;

fn main() -> anyhow::Result<()> {
    // SAFETY: first thing in main: no other thread exists yet.
    unsafe { lectern::cli::prepare_process()? };
    let cli = lectern::cli::Cli::parse();
    lectern::cli::init_logs(cli.global.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(lectern_document::engines::cpu::MAX_BLOCKING_THREADS)
        .enable_all()
        .build()?;
    let code = runtime.block_on(lectern::cli::run(cli));
    // Blocking work in flight (file writes, a page's OCR) gets a moment to finish.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    std::process::exit(code?);
}
