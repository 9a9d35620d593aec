use clap::Parser;

fn main() -> anyhow::Result<()> {
    // One OpenMP thread per tesseract engine; must be set before any thread starts.
    if std::env::var_os("OMP_THREAD_LIMIT").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("OMP_THREAD_LIMIT", "1") };
    }
    // Two malloc arenas, not glibc's 8 per core: with tokio, pdfium, tesseract, ONNX Runtime
    // and LanceDB threads each freeing into an arena of its own, a 1,000-page run peaked at
    // 1,340 MiB RSS; with 2, at 914 MiB in the same time (benches/results/pages-2026-12-03.txt).
    // MALLOC_ARENA_MAX, when set, wins.
    #[cfg(target_env = "gnu")]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: a malloc tuning call, made before any other thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
    // A settings file fills in what neither flags nor the environment set.
    let args: Vec<String> = std::env::args().collect();
    let config = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--config=").map(str::to_string)))
        .or_else(|| std::env::var("LECTERN_CONFIG").ok());
    if let Some(path) = config {
        for (var, value) in lectern::config::read_config_file(std::path::Path::new(&path))? {
            if std::env::var_os(var).is_none() {
                // SAFETY: no other thread exists yet.
                unsafe { std::env::set_var(var, value) };
            }
        }
    }
    let cli = lectern::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "lectern=info,warn".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        lectern::cli::LogFormat::Text => logs.init(),
        lectern::cli::LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let code = runtime.block_on(lectern::cli::run(cli));
    // Join the blocking threads so their thread-local OCR engines are dropped before exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    std::process::exit(code?);
}
