//! FSRS (Free Spaced Repetition Scheduler, open-spaced-repetition) through the `fsrs`
//! crate: a card's memory is its stability (days until recall drops to 90 %) and
//! difficulty (1–10); each review moves them by the rating and the days since the last
//! review, and the next interval is the one at which recall falls to the desired
//! retention. A card never reviewed under FSRS but reviewed under SM-2 starts from the
//! crate's estimate of its SM-2 state (`memory_state_from_sm2`). Days elapsed are UTC
//! calendar days, as FSRS counts days (a review at 09:00 after one at 23:00 the day before
//! is one day later).

use chrono::{DateTime, Duration, Utc};
use fsrs::{FSRS, MemoryState};
use lectern_queue::storage::{Flashcard, Fsrs};

use super::BadGrade;

/// The retention SM-2's intervals are taken to aim at, to convert an SM-2 card.
const SM2_RETENTION: f32 = 0.9;

/// The FSRS state after rating `card` 1 (again) … 4 (easy) at `now`.
pub fn review(card: &Flashcard, rating: i64, desired_retention: f64, now: DateTime<Utc>) -> Result<Fsrs, BadGrade> {
    if !(1..=4).contains(&rating) {
        return Err(BadGrade { scheduler: "FSRS", range: "1–4 (again, hard, good, easy)", got: rating });
    }
    let fsrs = FSRS::default();
    let days_since = |then: DateTime<Utc>| (now.date_naive() - then.date_naive()).num_days().max(0) as u32;
    let (memory, elapsed) = match &card.fsrs {
        Some(f) => (
            Some(MemoryState { stability: f.stability as f32, difficulty: f.difficulty as f32 }),
            days_since(f.reviewed_at),
        ),
        // SM-2 has scheduled it at least once (a lapse keeps a 1-day interval).
        None if card.sm2.interval_days > 0 => {
            let reviewed = card.sm2.due - Duration::days(card.sm2.interval_days as i64);
            let from_sm2 =
                fsrs.memory_state_from_sm2(card.sm2.ease as f32, card.sm2.interval_days as f32, SM2_RETENTION).ok();
            (from_sm2, days_since(reviewed))
        }
        None => (None, 0),
    };
    let retention = desired_retention as f32;
    let next = fsrs
        .next_states(memory, retention, elapsed)
        // Only non-finite states fail; the crate's parameters and a rating in 1–4 give none.
        .expect("FSRS states from default parameters are finite");
    let state = match rating {
        1 => next.again,
        2 => next.hard,
        3 => next.good,
        _ => next.easy,
    };
    let interval_days = state.interval.round().max(1.0) as u32;
    Ok(Fsrs {
        stability: state.memory.stability as f64,
        difficulty: state.memory.difficulty as f64,
        interval_days,
        reviewed_at: now,
        due: now + Duration::days(interval_days as i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lectern_queue::storage::Sm2;

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn new_card() -> Flashcard {
        Flashcard {
            id: "d-c001".into(),
            document_id: "d".into(),
            front: "f".into(),
            back: "b".into(),
            page: 1,
            sm2: Sm2 { ease: 2.5, interval_days: 0, repetitions: 0, due: t0() },
            fsrs: None,
        }
    }

    /// The fsrs crate's own reference (6.6.2, `test_memory_state`, default parameters,
    /// retention 0.9): ratings again, good ×5 after 0, 0, 1, 3, 8, 21 days end at stability
    /// 53.62691 and difficulty 6.3574867.
    #[test]
    fn a_review_history_matches_the_crates_reference_outputs() {
        let mut card = new_card();
        let mut now = t0();
        for (rating, days) in [(1, 0), (3, 0), (3, 1), (3, 3), (3, 8), (3, 21)] {
            now += Duration::days(days);
            card.fsrs = Some(review(&card, rating, 0.9, now).unwrap());
        }
        let f = card.fsrs.unwrap();
        assert!((f.stability - 53.62691).abs() < 1e-3, "stability {}", f.stability);
        assert!((f.difficulty - 6.3574867).abs() < 1e-3, "difficulty {}", f.difficulty);
        // At retention 0.9 the interval is the stability, rounded.
        assert_eq!(f.interval_days, 54);
        assert_eq!(f.due, now + Duration::days(54));
    }

    /// A new card's first intervals, from the crate's documented `next_states` example:
    /// again 0.212 → 1 day, hard 1.2931 → 1, good 2.3065 → 2, easy 8.2956 → 8.
    #[test]
    fn first_review_intervals_follow_the_rating() {
        let days: Vec<u32> = (1..=4).map(|r| review(&new_card(), r, 0.9, t0()).unwrap().interval_days).collect();
        assert_eq!(days, [1, 1, 2, 8]);
        assert!(review(&new_card(), 0, 0.9, t0()).is_err());
        assert!(review(&new_card(), 5, 0.9, t0()).is_err());
    }

    /// Days are calendar days: 23:00 then 09:00 the next morning is one day.
    #[test]
    fn elapsed_days_are_calendar_days() {
        let mut card = new_card();
        let evening: DateTime<Utc> = "2026-01-01T23:00:00Z".parse().unwrap();
        card.fsrs = Some(review(&card, 3, 0.9, evening).unwrap());
        let next_morning = review(&card, 3, 0.9, evening + Duration::hours(10)).unwrap();
        let same_evening = review(&card, 3, 0.9, evening + Duration::minutes(30)).unwrap();
        assert!(next_morning.stability > same_evening.stability, "{next_morning:?} vs {same_evening:?}");
    }

    /// A card with SM-2 history starts from its converted state, not from scratch.
    #[test]
    fn an_sm2_card_keeps_its_history() {
        let mut card = new_card();
        card.sm2 = Sm2 { ease: 2.5, interval_days: 15, repetitions: 3, due: t0() + Duration::days(15) };
        let converted = review(&card, 3, 0.9, t0() + Duration::days(15)).unwrap();
        let fresh = review(&new_card(), 3, 0.9, t0() + Duration::days(15)).unwrap();
        assert!(converted.interval_days > 15, "a good answer after 15 days goes further: {}", converted.interval_days);
        assert!(converted.interval_days > fresh.interval_days);
    }
}
