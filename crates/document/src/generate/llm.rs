//! Optional: an OpenAI-compatible chat endpoint (Ollama's `/v1`, llama.cpp's server, …)
//! writes a short summary that opens the cheat sheet. Off unless `[generate.llm]` is set;
//! without it, or when the call fails, everything else is generated exactly the same.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::config::LlmConfig;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("LLM request to {url} failed: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("LLM answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("LLM answer has no message content")]
    Empty,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
}

/// Asks for a summary of at most 120 words built only from `sentences` (the document's
/// most central ones, in reading order).
pub async fn summary(config: &LlmConfig, title: &str, sentences: &[&str]) -> Result<String, LlmError> {
    let url = format!("{}/chat/completions", config.url.trim_end_matches('/'));
    let body = json!({
        "model": config.model,
        "temperature": 0.2,
        "max_tokens": 300,
        "messages": [
            {"role": "system", "content": "You write study summaries. Use only facts from the sentences given. \
                At most 120 words, plain prose, no lists, no preamble."},
            {"role": "user", "content": format!("Document: {title}\n\nKey sentences:\n- {}", sentences.join("\n- "))},
        ],
    });
    let mut request = reqwest::Client::new().post(&url).timeout(Duration::from_secs(config.timeout_secs)).json(&body);
    if let Some(key) = config.api_key_env.as_deref().and_then(|name| std::env::var(name).ok()) {
        request = request.bearer_auth(key);
    }
    let http = |source| LlmError::Http { url: url.clone(), source };
    let response = request.send().await.map_err(http)?;
    let status = response.status();
    if !status.is_success() {
        let body: String = response.text().await.unwrap_or_default().chars().take(300).collect();
        return Err(LlmError::Status { status: status.as_u16(), body });
    }
    let completion: Completion = response.json().await.map_err(http)?;
    let text = completion.choices.into_iter().next().and_then(|c| c.message.content).unwrap_or_default();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() { Err(LlmError::Empty) } else { Ok(text) }
}
