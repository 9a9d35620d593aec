//! The operator's dashboard at `/`: one server-rendered page (no front-end build) with the
//! queues, recent documents and their progress, failures with reasons, and cancel/retry
//! buttons. It refreshes itself every 2 s; the buttons call the JSON API with the session
//! cookie that opening `/?token=…` once sets.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiError, internal};
use lectern_document::context::Context;
use lectern_queue::storage::{DocumentStatus, JobState, now_ms};

const RECENT: i64 = 25;

pub(super) async fn page(State(ctx): State<Arc<Context>>) -> Result<Response, ApiError> {
    let queues = ctx.store.queue_stats(now_ms()).await.map_err(internal)?;
    let documents = ctx.store.recent_documents(RECENT).await.map_err(internal)?;
    let mut html = String::from(HEAD);

    html.push_str("<h2>Queues</h2><table><tr><th>queue</th><th>waiting</th><th>running</th><th>done</th><th>failed</th><th>dead</th><th>cancelled</th><th>oldest waiting</th></tr>");
    for q in &queues {
        let oldest = q.oldest_available_ms.map(|ms| format!("{:.1} s", ms as f64 / 1000.0)).unwrap_or_default();
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{oldest}</td></tr>",
            esc(&q.queue),
            q.available,
            q.running,
            q.done,
            q.failed,
            q.dead,
            q.cancelled
        );
    }
    html.push_str("</table>");

    html.push_str("<h2>Recent documents</h2><table><tr><th>document</th><th>file</th><th>status</th><th>stage</th><th>pages</th><th>type</th><th></th></tr>");
    let mut failures = Vec::new();
    for d in &documents {
        let pages = d.pages.unwrap_or(0);
        let percent = if pages > 0 { 100 * d.pages_done / pages } else { 0 };
        let action = if d.is_finished() {
            String::new()
        } else {
            format!("<button onclick=\"act('/v1/documents/{}/cancel')\">cancel</button>", esc(&d.id))
        };
        let _ = write!(
            html,
            "<tr id=\"doc-{id}\" data-status=\"{status}\"><td><code>{id}</code></td><td>{file}</td><td class=\"{status}\">{status}</td><td>{stage}</td>\
             <td><progress max=\"100\" value=\"{percent}\"></progress> {done}/{pages}</td><td>{kind}</td><td>{action}</td></tr>",
            id = esc(&d.id),
            file = esc(&d.filename),
            status = d.status,
            stage = esc(d.stage.as_deref().unwrap_or("")),
            done = d.pages_done,
            kind = esc(d.doc_type.as_deref().unwrap_or("")),
        );
        if d.status == DocumentStatus::Failed {
            failures.push(d);
        }
    }
    html.push_str("</table>");

    html.push_str("<h2>Failures</h2>");
    if failures.is_empty() {
        html.push_str("<p>none among the recent documents</p>");
    }
    for d in failures {
        let jobs = ctx.store.jobs_for_document(&d.id).await.map_err(internal)?;
        let _ = write!(
            html,
            "<div class=\"failure\"><b>{}</b> <code>{}</code>: {}",
            esc(&d.filename),
            esc(&d.id),
            esc(d.error.as_deref().unwrap_or(""))
        );
        for j in jobs.iter().filter(|j| matches!(j.state, JobState::Failed | JobState::Dead)) {
            let _ = write!(
                html,
                " <button onclick=\"act('/v1/jobs/{}/retry')\">retry {} job {}</button>",
                j.id,
                esc(&j.stage),
                j.id
            );
        }
        html.push_str("</div>");
    }
    html.push_str("</body></html>");
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

const HEAD: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>Lectern</title>
<meta http-equiv="refresh" content="2">
<style>body{font:14px system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}.failed{color:#b00}.done{color:#070}
.failure{margin:.3em 0}</style>
<script>async function act(path){const r=await fetch(path,{method:'POST',credentials:'same-origin'});
if(!r.ok){alert((await r.json()).error)}location.reload()}</script></head><body><h1>Lectern</h1>"#;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_escaped() {
        assert_eq!(super::esc("<img src=x onerror='a'>&"), "&lt;img src=x onerror=&#39;a&#39;&gt;&amp;");
    }
}
