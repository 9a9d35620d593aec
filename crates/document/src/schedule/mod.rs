//! Flashcard reviews under the collection's scheduler: [`sm2`] (SuperMemo 2, grades 0–5,
//! the default) or [`fsrs`] (the `fsrs` crate's FSRS-6 with its default parameters,
//! ratings 1–4 as Anki's Again/Hard/Good/Easy). Each scheduler keeps its own state on the
//! card: switching a collection's scheduler keeps both, though reviews made under one are
//! not seen by the other (FSRS starts from an estimate of a card's SM-2 state).

pub mod fsrs;
pub mod sm2;

use chrono::{DateTime, Utc};
use lectern_queue::storage::{CollectionSettings, Flashcard, Scheduler};

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{scheduler} grade must be {range}, got {got}")]
pub struct BadGrade {
    pub scheduler: &'static str,
    pub range: &'static str,
    pub got: i64,
}

/// The card after answering it with `grade` at `now` under `settings`' scheduler.
pub fn review(
    card: &Flashcard,
    grade: i64,
    settings: &CollectionSettings,
    now: DateTime<Utc>,
) -> Result<Flashcard, BadGrade> {
    let mut card = card.clone();
    match settings.scheduler {
        Scheduler::Sm2 => card.sm2 = sm2::review(&card.sm2, grade, now)?,
        Scheduler::Fsrs => card.fsrs = Some(fsrs::review(&card, grade, settings.desired_retention, now)?),
    }
    Ok(card)
}

/// When the card is next due under `scheduler` (a card FSRS has not seen yet: when SM-2
/// has it due, which for a new card is when it was made).
pub fn due(card: &Flashcard, scheduler: Scheduler) -> DateTime<Utc> {
    match (scheduler, &card.fsrs) {
        (Scheduler::Fsrs, Some(f)) => f.due,
        _ => card.sm2.due,
    }
}
