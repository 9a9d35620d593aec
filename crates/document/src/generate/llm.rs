//! Optional: an OpenAI-compatible chat endpoint (Ollama's `/v1`, llama.cpp's server, …)
//! writes a short summary that opens the cheat sheet, drafts quiz questions and flashcards
//! from the most important passages (checked by [`super::draft`] before any is used),
//! answers `ask` from retrieved passages, and reads the fields of a business document that
//! the geometric pass left empty or invalid (checked by [`crate::extract::read_supplied`]).
//! Off unless `[generate.llm]` is set; without it, or when the call fails, the material is
//! generated exactly the same, `ask` answers with extracted sentences and fields stay as
//! found.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::LlmConfig;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("LLM request to {url} failed: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("LLM answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("LLM answer has no message content")]
    Empty,
    #[error("LLM answer is not the JSON asked for: {0}")]
    Format(String),
}

/// A numbered passage the LLM drafts from; items cite it by number (from 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub page: u32,
    pub text: String,
}

/// What the LLM proposed, unchecked (items it wrote in another shape are left out).
#[derive(Debug, Default)]
pub struct Drafts {
    pub questions: Vec<DraftQuestion>,
    pub cards: Vec<DraftCard>,
}

#[derive(Debug, Deserialize)]
pub struct DraftQuestion {
    /// "multiple_choice" or "cloze".
    pub kind: String,
    pub prompt: String,
    #[serde(default)]
    pub choices: Vec<String>,
    pub answer: String,
    pub passage: usize,
}

#[derive(Debug, Deserialize)]
pub struct DraftCard {
    pub front: String,
    pub back: String,
    pub passage: usize,
}

const DRAFT_SYSTEM: &str = "You write study questions and flashcards for students from numbered passages. \
Use only what the passages say. Reply with one JSON object and nothing else: \
{\"questions\": [{\"kind\": \"multiple_choice\" or \"cloze\", \"prompt\": \"...\", \"choices\": [\"...\"], \
\"answer\": \"...\", \"passage\": N}], \"cards\": [{\"front\": \"...\", \"back\": \"...\", \"passage\": N}]}. \
A prompt is a sentence of the passage with _____ where the answer was; the answer is a key term, \
copied exactly from the passage, never a common word. Multiple choice has four choices: the answer \
and three other terms of the same kind from the document. A card's front is a term or a question; \
its back is copied from the passage.";

/// Asks for `questions` questions and `cards` flashcards drafted from `passages`.
pub async fn draft(
    config: &LlmConfig,
    title: &str,
    passages: &[Passage],
    questions: usize,
    cards: usize,
) -> Result<Drafts, LlmError> {
    let numbered: Vec<String> =
        passages.iter().enumerate().map(|(i, p)| format!("[{}] (page {}) {}", i + 1, p.page, p.text)).collect();
    let user =
        format!("Document: {title}\n\n{}\n\nWrite {questions} questions and {cards} cards.", numbered.join("\n"));
    let value = json_object(config, DRAFT_SYSTEM, &user, 0.2, 2000).await?;
    Ok(Drafts { questions: items(&value, "questions"), cards: items(&value, "cards") })
}

/// A field the LLM is asked to read.
#[derive(Debug, Clone)]
pub struct FieldQuestion {
    pub name: String,
    /// Its type, as the schema names it ("date", "amount", "iban"…).
    pub kind: String,
    /// Labels it is printed under.
    pub labels: Vec<String>,
}

/// A field as the LLM read it, unchecked.
#[derive(Debug, Deserialize)]
pub struct FieldAnswer {
    pub name: String,
    pub value: String,
    pub page: u32,
}

const FIELDS_SYSTEM: &str = "You read fields out of business documents (invoices, receipts, forms). \
Reply with one JSON object and nothing else: {\"fields\": [{\"name\": \"...\", \"value\": \"...\", \"page\": N}]}. \
A value is copied exactly as printed, with the number of the page it is printed on. \
Leave out a field the text does not give; never guess.";

/// Asks for `fields` out of `pages` (number and text of each).
pub async fn fields(
    config: &LlmConfig,
    title: &str,
    fields: &[FieldQuestion],
    pages: &[(u32, String)],
) -> Result<Vec<FieldAnswer>, LlmError> {
    let wanted: Vec<String> =
        fields.iter().map(|f| format!("- {} ({}), printed as: {}", f.name, f.kind, f.labels.join(", "))).collect();
    let text: Vec<String> = pages.iter().map(|(n, text)| format!("--- page {n} ---\n{text}")).collect();
    let user = format!("Document: {title}\n\nFields:\n{}\n\n{}", wanted.join("\n"), text.join("\n\n"));
    Ok(items(&json_object(config, FIELDS_SYSTEM, &user, 0.0, 800).await?, "fields"))
}

/// One chat turn that asks for a JSON object; the object out of the answer.
async fn json_object(
    config: &LlmConfig,
    system: &str,
    user: &str,
    temperature: f32,
    max_tokens: u32,
) -> Result<Value, LlmError> {
    let body = json!({
        "model": config.model,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "response_format": {"type": "json_object"},
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
    });
    let (url, response) = send(config, &body).await?;
    let completion: Completion = response.json().await.map_err(|source| LlmError::Http { url, source })?;
    let text = completion.choices.into_iter().next().and_then(|c| c.message.content).ok_or(LlmError::Empty)?;
    // Models wrap JSON in prose or code fences: take the outermost object.
    let (start, end) = (text.find('{'), text.rfind('}'));
    let json = match (start, end) {
        (Some(s), Some(e)) if s < e => &text[s..=e],
        _ => return Err(LlmError::Format("no JSON object".into())),
    };
    serde_json::from_str(json).map_err(|e| LlmError::Format(e.to_string()))
}

/// The list under `key`, item by item: one malformed item (a string for a number, a
/// missing field) costs only itself.
fn items<T: serde::de::DeserializeOwned>(value: &Value, key: &str) -> Vec<T> {
    let list = value.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    list.into_iter().filter_map(|item| serde_json::from_value(item).ok()).collect()
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(alias = "delta")]
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
}

/// Asks for a summary of at most 120 words built only from `sentences` (the document's
/// most central ones, in reading order).
pub async fn summary(config: &LlmConfig, title: &str, sentences: &[&str]) -> Result<String, LlmError> {
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
    let (url, response) = send(config, &body).await?;
    let completion: Completion = response.json().await.map_err(|source| LlmError::Http { url, source })?;
    let text = completion.choices.into_iter().next().and_then(|c| c.message.content).unwrap_or_default();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() { Err(LlmError::Empty) } else { Ok(text) }
}

/// One chat turn with `stream: true`: `on_delta` gets each piece of the answer as it
/// arrives (server-sent `data:` lines); returns the whole answer. A server that ignores
/// `stream` and answers with one JSON completion works too.
pub async fn chat_stream(
    config: &LlmConfig,
    system: &str,
    user: &str,
    on_delta: &mut (dyn FnMut(&str) + Send),
) -> Result<String, LlmError> {
    let body = json!({
        "model": config.model,
        "temperature": 0.1,
        "max_tokens": 500,
        "stream": true,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
    });
    let (url, mut response) = send(config, &body).await?;
    let http = |source| LlmError::Http { url: url.clone(), source };
    let mut answer = String::new();
    let mut emit = |piece: Option<String>| {
        if let Some(piece) = piece.filter(|p| !p.is_empty()) {
            on_delta(&piece);
            answer.push_str(&piece);
        }
    };
    let streamed = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("text/event-stream"));
    if !streamed {
        let completion: Completion = response.json().await.map_err(http)?;
        emit(completion.choices.into_iter().next().and_then(|c| c.message.content));
    } else {
        let mut pending: Vec<u8> = Vec::new();
        'read: while let Some(bytes) = response.chunk().await.map_err(http)? {
            pending.extend_from_slice(&bytes);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let Some(data) =
                    String::from_utf8_lossy(&line).trim().strip_prefix("data:").map(|d| d.trim().to_string())
                else {
                    continue;
                };
                if data == "[DONE]" {
                    break 'read;
                }
                let delta = serde_json::from_str::<Completion>(&data).ok().and_then(|c| c.choices.into_iter().next());
                emit(delta.and_then(|c| c.message.content));
            }
        }
    }
    if answer.trim().is_empty() { Err(LlmError::Empty) } else { Ok(answer) }
}

/// POSTs `body` to the chat endpoint; an answer other than 2xx is an error.
async fn send(config: &LlmConfig, body: &Value) -> Result<(String, reqwest::Response), LlmError> {
    let url = format!("{}/chat/completions", config.url.trim_end_matches('/'));
    let mut request = reqwest::Client::new().post(&url).timeout(Duration::from_secs(config.timeout_secs)).json(body);
    if let Some(key) = config.api_key_env.as_deref().and_then(|name| std::env::var(name).ok()) {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.map_err(|source| LlmError::Http { url: url.clone(), source })?;
    let status = response.status();
    if !status.is_success() {
        let body: String = response.text().await.unwrap_or_default().chars().take(300).collect();
        return Err(LlmError::Status { status: status.as_u16(), body });
    }
    Ok((url, response))
}
