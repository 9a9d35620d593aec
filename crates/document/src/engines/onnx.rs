//! The process-wide ONNX Runtime environment. ort allows one per process; the layout model
//! and fastembed both build their sessions from it.

use std::path::Path;
use std::sync::Mutex;

use ort::environment::Environment;

static ENVIRONMENT: Mutex<Option<Environment>> = Mutex::new(None);

/// Loads `libonnxruntime.so` from `library` (first call only) and returns the environment.
pub fn environment(library: &Path) -> Result<Environment, String> {
    let mut env = ENVIRONMENT.lock().map_err(|_| "ONNX Runtime environment lock poisoned".to_string())?;
    if let Some(env) = env.as_ref() {
        return Ok(env.clone());
    }
    if !library.exists() {
        return Err(format!("ONNX Runtime library not found at {} (run scripts/setup.sh)", library.display()));
    }
    let built = ort::init_from(library)
        .map_err(|e| format!("load {}: {e}", library.display()))?
        .with_name("lectern")
        .build()
        .map_err(|e| format!("create ONNX Runtime environment: {e}"))?;
    *env = Some(built.clone());
    Ok(built)
}
