use clap::Parser;

fn main() -> anyhow::Result<()> {
    // SAFETY: first thing in main: no other thread exists yet.
    unsafe { lectern::cli::prepare_process()? };
    let cli = lectern::cli::Cli::parse();
    lectern::cli::init_logs(cli.global.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let code = runtime.block_on(lectern::cli::run(cli));
    // Join the blocking threads so their thread-local OCR engines are dropped before exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    std::process::exit(code?);
}
