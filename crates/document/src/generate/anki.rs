//! Anki export (.apkg): a zip holding `collection.anki2`, an Anki collection (SQLite,
//! schema version 11, which every Anki since 2.1 imports) with one deck, a note type with
//! Front, Back and Source fields, a note and a new card per flashcard; figure images as
//! the zip's numbered media files named by its `media` map. Written with rusqlite to a file
//! in the caller's directory, read back into the zip, then removed.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde_json::json;
use sha1::{Digest, Sha1};

use super::flashcards::Card;
use crate::error::StageError;

pub const MEDIA_TYPE: &str = "application/apkg";

const SCHEMA: &str = "
CREATE TABLE col (id integer primary key, crt integer not null, mod integer not null, scm integer not null,
    ver integer not null, dty integer not null, usn integer not null, ls integer not null, conf text not null,
    models text not null, decks text not null, dconf text not null, tags text not null);
CREATE TABLE notes (id integer primary key, guid text not null, mid integer not null, mod integer not null,
    usn integer not null, tags text not null, flds text not null, sfld integer not null, csum integer not null,
    flags integer not null, data text not null);
CREATE TABLE cards (id integer primary key, nid integer not null, did integer not null, ord integer not null,
    mod integer not null, usn integer not null, type integer not null, queue integer not null, due integer not null,
    ivl integer not null, factor integer not null, reps integer not null, lapses integer not null,
    left integer not null, odue integer not null, odid integer not null, flags integer not null, data text not null);
CREATE TABLE revlog (id integer primary key, cid integer not null, usn integer not null, ease integer not null,
    ivl integer not null, lastIvl integer not null, factor integer not null, time integer not null,
    type integer not null);
CREATE TABLE graves (usn integer not null, oid integer not null, type integer not null);
CREATE INDEX ix_notes_usn on notes (usn);
CREATE INDEX ix_cards_usn on cards (usn);
CREATE INDEX ix_revlog_usn on revlog (usn);
CREATE INDEX ix_cards_nid on cards (nid);
CREATE INDEX ix_cards_sched on cards (did, queue, due);
CREATE INDEX ix_revlog_cid on revlog (cid);
CREATE INDEX ix_notes_csum on notes (csum);
";

/// A stable positive id below 2^53 (Anki ids travel through JSON) from a name.
fn id_from(name: &str) -> i64 {
    let digest = Sha1::digest(name.as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (n >> 12) as i64 + 1
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\n', "<br>")
}

/// Anki's duplicate check: the first 8 hex digits of the SHA-1 of the sort field, as a number.
fn checksum(sort_field: &str) -> i64 {
    let digest = Sha1::digest(sort_field.as_bytes());
    u32::from_be_bytes(digest[..4].try_into().expect("4 bytes")) as i64
}

/// The fields of a card's note: front (with its image), back, source.
fn fields(card: &Card) -> [String; 3] {
    let mut front = escape_html(&card.front);
    if let Some(image) = &card.image {
        front = format!("<img src=\"{}\"><br>{front}", escape_html(image));
    }
    let source = super::quiz::citation(card.document.as_deref(), card.page);
    [front, escape_html(&card.back), escape_html(&source)]
}

fn model(model_id: i64, deck_id: i64, now: i64) -> serde_json::Value {
    let field = |name: &str, ord: usize| json!({"name": name, "ord": ord, "sticky": false, "rtl": false, "font": "Arial", "size": 20, "media": []});
    json!({
        "id": model_id, "name": "Lectern (front, back, source)", "type": 0, "mod": now, "usn": -1, "sortf": 0,
        "did": deck_id, "tags": [], "vers": [],
        "flds": [field("Front", 0), field("Back", 1), field("Source", 2)],
        "tmpls": [{
            "name": "Card 1", "ord": 0, "did": null, "bqfmt": "", "bafmt": "",
            "qfmt": "{{Front}}",
            "afmt": "{{FrontSide}}<hr id=answer>{{Back}}<div class=source>{{Source}}</div>"
        }],
        "css": ".card { font-family: Arial; font-size: 20px; text-align: center; color: black; background-color: white; }\n.source { font-size: 12px; color: #666; margin-top: 1em; }\nimg { max-width: 100%; }",
        "latexPre": "\\documentclass[12pt]{article}\n\\special{papersize=3in,5in}\n\\usepackage{amssymb,amsmath}\n\\pagestyle{empty}\n\\begin{document}\n",
        "latexPost": "\\end{document}",
        "latexsvg": false,
        "req": [[0, "any", [0]]]
    })
}

fn deck(id: i64, name: &str, now: i64) -> serde_json::Value {
    json!({
        "id": id, "name": name, "mod": now, "usn": -1, "desc": "", "dyn": 0, "conf": 1, "collapsed": false,
        "browserCollapsed": false, "extendNew": 0, "extendRev": 0,
        "newToday": [0, 0], "revToday": [0, 0], "lrnToday": [0, 0], "timeToday": [0, 0]
    })
}

fn deck_config() -> serde_json::Value {
    json!({"1": {
        "id": 1, "name": "Default", "mod": 0, "usn": 0, "maxTaken": 60, "autoplay": true, "timer": 0,
        "replayq": true, "dyn": false,
        "new": {"delays": [1.0, 10.0], "ints": [1, 4, 0], "initialFactor": 2500, "order": 1, "perDay": 20,
                "bury": false},
        "rev": {"perDay": 200, "ease4": 1.3, "ivlFct": 1.0, "maxIvl": 36500, "bury": false, "hardFactor": 1.2},
        "lapse": {"delays": [10.0], "mult": 0.0, "minInt": 1, "leechFails": 8, "leechAction": 1}
    }})
}

/// Writes the collection for `cards` to `path` (replaced if present).
fn write_collection(path: &Path, deck_name: &str, cards: &[Card], now: DateTime<Utc>) -> rusqlite::Result<()> {
    let _ = std::fs::remove_file(path);
    let db = Connection::open(path)?;
    db.execute_batch(SCHEMA)?;
    let (ms, secs) = (now.timestamp_millis(), now.timestamp());
    let deck_id = id_from(&format!("deck {deck_name}"));
    let model_id = id_from("model lectern front back source");
    let conf = json!({
        "activeDecks": [deck_id], "curDeck": deck_id, "newSpread": 0, "collapseTime": 1200, "timeLim": 0,
        "estTimes": true, "dueCounts": true, "curModel": model_id, "nextPos": cards.len() + 1,
        "sortType": "noteFld", "sortBackwards": false, "addToCur": true
    });
    let decks = json!({"1": deck(1, "Default", secs), deck_id.to_string(): deck(deck_id, deck_name, secs)});
    let models = json!({ model_id.to_string(): model(model_id, deck_id, secs) });
    db.execute(
        "INSERT INTO col VALUES (1, ?1, ?2, ?2, 11, 0, 0, 0, ?3, ?4, ?5, ?6, '{}')",
        params![
            secs - secs % 86_400,
            ms,
            conf.to_string(),
            models.to_string(),
            decks.to_string(),
            deck_config().to_string()
        ],
    )?;
    let tx = db.unchecked_transaction()?;
    for (i, card) in cards.iter().enumerate() {
        let [front, back, source] = fields(card);
        // Anki's sort field is the first field as text, a picture's file name kept.
        let sort_field = match &card.image {
            Some(image) => format!("{image} {}", card.front),
            None => card.front.clone(),
        };
        let note_id = ms + i as i64;
        let guid = hex::encode(&Sha1::digest(card.id.as_bytes())[..8]);
        let tags = match card.kind.as_str() {
            "" => String::new(),
            kind => format!(" lectern {kind} "),
        };
        tx.execute(
            "INSERT INTO notes VALUES (?1, ?2, ?3, ?4, -1, ?5, ?6, ?7, ?8, 0, '')",
            params![
                note_id,
                guid,
                model_id,
                secs,
                tags,
                [front, back, source].join("\x1f"),
                sort_field,
                checksum(&sort_field)
            ],
        )?;
        // A new card (type 0, queue 0) due in deck order.
        tx.execute(
            "INSERT INTO cards VALUES (?1, ?2, ?3, 0, ?4, -1, 0, 0, ?5, 0, 0, 0, 0, 0, 0, 0, 0, '')",
            params![note_id, note_id, deck_id, secs, i as i64 + 1],
        )?;
    }
    tx.commit()?;
    db.close().map_err(|(_, e)| e)
}

/// The .apkg for `cards` in a deck named `deck_name`; `media` resolves a card's image name
/// to its file. `work_dir` holds the collection while it is written.
pub fn build(
    deck_name: &str,
    cards: &[Card],
    media: impl Fn(&str) -> Option<PathBuf>,
    work_dir: &Path,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, StageError> {
    let path = work_dir.join(".collection.anki2.partial");
    write_collection(&path, deck_name, cards, now).map_err(|e| StageError::transient("write Anki collection", e))?;
    let collection = std::fs::read(&path).map_err(|e| StageError::transient("read Anki collection", e));
    let _ = std::fs::remove_file(&path);
    let collection = collection?;

    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let fail = |e: &dyn std::fmt::Display| StageError::Transient(format!("write .apkg: {e}"));
    zip.start_file("collection.anki2", options).map_err(|e| fail(&e))?;
    zip.write_all(&collection).map_err(|e| fail(&e))?;
    let mut names = serde_json::Map::new();
    for image in cards.iter().filter_map(|c| c.image.as_deref()) {
        if names.values().any(|v| v == image) {
            continue;
        }
        let file = media(image).ok_or_else(|| StageError::Transient(format!("figure {image} is not on disk")))?;
        let bytes = std::fs::read(&file).map_err(|e| StageError::transient("read figure", e))?;
        let number = names.len().to_string();
        zip.start_file(number.as_str(), options).map_err(|e| fail(&e))?;
        zip.write_all(&bytes).map_err(|e| fail(&e))?;
        names.insert(number, image.into());
    }
    zip.start_file("media", options).map_err(|e| fail(&e))?;
    zip.write_all(serde_json::Value::Object(names).to_string().as_bytes()).map_err(|e| fail(&e))?;
    Ok(zip.finish().map_err(|e| fail(&e))?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_the_first_eight_hex_digits_of_sha1() {
        assert_eq!(format!("{:08x}", checksum("mutex")), hex::encode(&Sha1::digest(b"mutex")[..4]));
        assert!(id_from("deck a") > 0 && id_from("deck a") < 1 << 53);
        assert_ne!(id_from("deck a"), id_from("deck b"));
        assert_eq!(escape_html("a < b & c\nd"), "a &lt; b &amp; c<br>d");
    }
}
