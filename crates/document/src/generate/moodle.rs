//! Quizzes in the formats teachers import into Moodle (and most LMSs): Moodle XML — a
//! category, then multiple choice (`multichoice`, one answer at 100 %), cloze as
//! `shortanswer` (the blank's words, case-insensitive) and `truefalse` — and GIFT, the
//! same questions as text (question text marked `[html]`). Each question's general
//! feedback cites its source.

use super::quiz::{Kind, Question, Quiz};

pub const XML_MEDIA_TYPE: &str = "application/xml";
pub const GIFT_MEDIA_TYPE: &str = "text/plain; charset=utf-8";

fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A `<text>` element of an HTML field: `content` escaped as HTML, then as XML.
fn text(content: &str) -> String {
    format!("<text>{}</text>", escape_xml(&escape_xml(content)))
}

/// A `<text>` element of a plain-text field (a question's name, a short answer).
fn plain(content: &str) -> String {
    format!("<text>{}</text>", escape_xml(content))
}

fn feedback(q: &Question) -> String {
    format!("Source ({}): {}", q.citation(), q.source)
}

/// The blank of a cloze prompt: "_____".
const BLANK: &str = "_____";

/// An answer: HTML for multiple choice, plain text where Moodle compares it with what the
/// student typed or with true/false.
fn answer(fraction: u32, content: &str, html: bool) -> String {
    let (format, body) = if html { ("html", text(content)) } else { ("moodle_auto_format", plain(content)) };
    format!(
        "    <answer fraction=\"{fraction}\" format=\"{format}\">{body}<feedback format=\"html\"><text></text></feedback></answer>\n"
    )
}

/// The quiz as Moodle XML (`<quiz>` with a category named after it).
pub fn xml(quiz: &Quiz) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<quiz>\n");
    out += &format!(
        "  <question type=\"category\">\n    <category>{}</category>\n  </question>\n",
        text(&format!("$course$/top/Lectern/{}", quiz.title.replace('/', "-")))
    );
    for q in &quiz.questions {
        let kind = match q.kind {
            Kind::MultipleChoice => "multichoice",
            Kind::Cloze => "shortanswer",
            Kind::TrueFalse => "truefalse",
        };
        out += &format!("  <question type=\"{kind}\">\n");
        out += &format!("    <name>{}</name>\n", plain(&format!("Q{} ({})", q.number, q.citation())));
        let lead = match q.kind {
            Kind::MultipleChoice => "Choose the missing words: ",
            Kind::Cloze => "Fill in the blank: ",
            Kind::TrueFalse => "True or false? ",
        };
        out += &format!("    <questiontext format=\"html\">{}</questiontext>\n", text(&format!("{lead}{}", q.prompt)));
        out += &format!("    <generalfeedback format=\"html\">{}</generalfeedback>\n", text(&feedback(q)));
        out += "    <defaultgrade>1</defaultgrade>\n    <penalty>0.3333333</penalty>\n    <hidden>0</hidden>\n";
        match q.kind {
            Kind::MultipleChoice => {
                out += "    <single>true</single>\n    <shuffleanswers>true</shuffleanswers>\n";
                out += "    <answernumbering>abc</answernumbering>\n";
                for c in &q.choices {
                    out += &answer(if *c == q.answer { 100 } else { 0 }, c, true);
                }
            }
            Kind::Cloze => {
                out += "    <usecase>0</usecase>\n";
                out += &answer(100, &q.answer, false);
            }
            Kind::TrueFalse => {
                let truth = q.answer == "True";
                out += &answer(if truth { 100 } else { 0 }, "true", false);
                out += &answer(if truth { 0 } else { 100 }, "false", false);
            }
        }
        out += "  </question>\n";
    }
    out + "</quiz>\n"
}

/// GIFT's special characters, escaped with a backslash.
fn escape_gift(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '~' | '=' | '#' | '{' | '}' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.replace('\n', " ")
}

/// Question text for GIFT: marked `[html]` and escaped as HTML, so a `<` in a sentence is
/// shown, not taken for a tag; then GIFT's own escapes.
fn gift_html(text: &str) -> String {
    escape_gift(&text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"))
}

/// The quiz as GIFT: a comment with the source, then `::name::[html]text {answers}`.
pub fn gift(quiz: &Quiz) -> String {
    let mut out = format!("// {}\n$CATEGORY: $course$/top/Lectern/{}\n\n", quiz.title, escape_gift(&quiz.title));
    for q in &quiz.questions {
        out += &format!("// {}\n", feedback(q).replace('\n', " "));
        let name = format!("::Q{}::[html]", q.number);
        let body = match q.kind {
            Kind::MultipleChoice => {
                let choices: Vec<String> = q
                    .choices
                    .iter()
                    .map(|c| format!("{}{}", if *c == q.answer { "=" } else { "~" }, escape_gift(c)))
                    .collect();
                format!("Choose the missing words\\: {} {{{}}}", gift_html(&q.prompt), choices.join(" "))
            }
            // The answer goes where the blank is: "The {=mutex} guards …".
            Kind::Cloze => match q.prompt.split_once(BLANK) {
                Some((before, after)) => {
                    format!("{}{{={}}}{}", gift_html(before), escape_gift(&q.answer), gift_html(after))
                }
                None => format!("{} {{={}}}", gift_html(&q.prompt), escape_gift(&q.answer)),
            },
            Kind::TrueFalse => {
                format!("{} {{{}}}", gift_html(&q.prompt), if q.answer == "True" { "T" } else { "F" })
            }
        };
        out += &format!("{name}{body}\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(kind: Kind, prompt: &str, choices: &[&str], answer: &str) -> Question {
        Question {
            number: 1,
            kind,
            prompt: prompt.into(),
            choices: choices.iter().map(|c| c.to_string()).collect(),
            answer: answer.into(),
            term: "mutex".into(),
            page: 3,
            source: "A mutex is a lock: {one} owner.".into(),
            document_id: None,
            document: Some("os.pdf".into()),
            difficulty: None,
        }
    }

    #[test]
    fn gift_escapes_and_places_answers() {
        let quiz = Quiz {
            title: "OS".into(),
            questions: vec![
                question(Kind::Cloze, "A _____ is a lock: one owner.", &[], "mutex"),
                question(Kind::MultipleChoice, "A _____ is a lock.", &["mutex", "queue", "pipe", "heap"], "mutex"),
                question(Kind::TrueFalse, "A queue is a lock.", &[], "False"),
            ],
            skipped: Vec::new(),
        };
        let g = gift(&quiz);
        assert!(g.contains("::Q1::[html]A {=mutex} is a lock\\: one owner."), "{g}");
        assert!(g.contains("{=mutex ~queue ~pipe ~heap}"), "{g}");
        assert!(g.contains("A queue is a lock. {F}"), "{g}");
        assert!(g.contains("// Source (os.pdf, page 3): A mutex is a lock: {one} owner."), "comments are not escaped");
        let x = xml(&quiz);
        assert_eq!(x.matches("<question type=").count(), 4, "a category and three questions");
        assert!(x.contains("<answer fraction=\"100\" format=\"moodle_auto_format\"><text>false</text>"));
        assert!(roxmltree::Document::parse(&x).is_ok(), "well-formed");
    }
}
