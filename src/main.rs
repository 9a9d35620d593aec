use clap::Parser;

fn main() -> anyhow::Result<()> {
    // One OpenMP thread per tesseract engine; must be set before any thread starts.
    if std::env::var_os("OMP_THREAD_LIMIT").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("OMP_THREAD_LIMIT", "1") };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "lectern=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = lectern::cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let code = runtime.block_on(lectern::cli::run(cli));
    // Join the blocking threads so their thread-local OCR engines are dropped before exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    std::process::exit(code?);
}
