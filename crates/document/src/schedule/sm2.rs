//! SM-2 spaced repetition (P. Woźniak, SuperMemo 2, 1987): intervals of 1 day, then 6, then
//! the previous interval times the easiness factor; the factor moves with each grade and
//! never drops below 1.3. A grade below 3 restarts the repetitions without changing the
//! factor (step 7 of the published algorithm).

use chrono::{DateTime, Duration, Utc};

/// A card's scheduling state, as the catalog stores it.
pub use lectern_queue::storage::Sm2;

use super::BadGrade;

/// A new card: ease 2.5, no repetitions, due now.
pub fn new_card(now: DateTime<Utc>) -> Sm2 {
    Sm2 { ease: 2.5, interval_days: 0, repetitions: 0, due: now }
}

/// The state after answering `card` with `grade` (0 = blackout … 5 = perfect) at `now`.
pub fn review(card: &Sm2, grade: i64, now: DateTime<Utc>) -> Result<Sm2, BadGrade> {
    if !(0..=5).contains(&grade) {
        return Err(BadGrade { scheduler: "SM-2", range: "0–5", got: grade });
    }
    let (ease, repetitions, interval_days) = if grade < 3 {
        (card.ease, 0, 1)
    } else {
        let q = (5 - grade) as f64;
        let ease = (card.ease + (0.1 - q * (0.08 + q * 0.02))).max(1.3);
        let interval = match card.repetitions {
            0 => 1,
            1 => 6,
            _ => (card.interval_days as f64 * ease).round() as u32,
        };
        (ease, card.repetitions + 1, interval)
    };
    Ok(Sm2 { ease, repetitions, interval_days, due: now + Duration::days(interval_days as i64) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn intervals_are_1_then_6_then_times_ease() {
        let mut s = new_card(t0());
        let mut intervals = Vec::new();
        for _ in 0..4 {
            s = review(&s, 4, t0()).unwrap();
            intervals.push(s.interval_days);
        }
        // Grade 4 leaves the ease at 2.5: 1, 6, round(6 × 2.5) = 15, round(15 × 2.5) = 38.
        assert_eq!(intervals, [1, 6, 15, 38]);
        assert_eq!(s.ease, 2.5);
        assert_eq!(s.due, t0() + Duration::days(38));
    }

    #[test]
    fn ease_follows_the_formula_and_has_a_floor() {
        let s = new_card(t0());
        assert!((review(&s, 5, t0()).unwrap().ease - 2.6).abs() < 1e-9);
        assert!((review(&s, 3, t0()).unwrap().ease - 2.36).abs() < 1e-9);
        let mut low = s.clone();
        for _ in 0..20 {
            low = review(&low, 3, t0()).unwrap();
        }
        assert_eq!(low.ease, 1.3, "ease never drops below 1.3");
    }

    #[test]
    fn a_lapse_restarts_repetitions_and_keeps_ease() {
        let once = review(&new_card(t0()), 5, t0()).unwrap();
        let s = review(&once, 5, t0()).unwrap();
        assert_eq!((s.repetitions, s.interval_days), (2, 6));
        let lapsed = review(&s, 2, t0()).unwrap();
        assert_eq!((lapsed.repetitions, lapsed.interval_days, lapsed.ease), (0, 1, s.ease));
        assert_eq!(review(&lapsed, 4, t0()).unwrap().interval_days, 1, "then 1 day again");
        assert!(review(&s, 6, t0()).is_err());
    }
}
