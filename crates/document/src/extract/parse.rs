//! Typed values out of a run of words: dates in several languages and orders, amounts with
//! their currency, identifiers, IBANs (check digits verified), VAT ids, e-mail addresses,
//! phone numbers, percentages, integers. Each parser looks for the first span of the words
//! that reads as its type, so a label's neighbour "le 05 Juillet 2015" still gives a date.

use std::ops::Range;

use super::schema::{Kind, fold};
use serde_json::{Value, json};

/// Most words one value spans ("DE30 5075 0094 0000 0485 67").
const MAX_SPAN: usize = 7;

/// Whether a numeric date reads day first (`31/12/2017`) or month first (`01/31/2009`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOrder {
    DayFirst,
    MonthFirst,
}

impl DateOrder {
    /// The order a document's numeric dates use: month first only when one of them can
    /// only be read that way (`01/31/2009`) and none only day first.
    pub fn of_words<'a>(words: impl Iterator<Item = &'a str>) -> Self {
        let (mut day_first, mut month_first) = (false, false);
        for w in words {
            if let Some([a, b, _]) = numeric_date_parts(w) {
                day_first |= a > 12 && b <= 12;
                month_first |= b > 12 && a <= 12;
            }
        }
        if month_first && !day_first { DateOrder::MonthFirst } else { DateOrder::DayFirst }
    }
}

/// A value found: which of the words it took, the typed value, and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub span: Range<usize>,
    pub value: Value,
    /// Why the value, read as its type, does not check out (e.g. IBAN check digits).
    pub problems: Vec<String>,
    /// How surely the words are of the type (an amount with a currency mark: 1).
    pub strength: f32,
}

/// The first value of `kind` in `words` (for amounts: the strongest, rightmost of equals,
/// as totals stand at a row's right end). `values`: an enum's allowed values.
pub fn find(kind: Kind, words: &[&str], order: DateOrder, values: &[String]) -> Option<Parsed> {
    match kind {
        Kind::Amount => {
            let mut best: Option<Parsed> = None;
            for start in 0..words.len() {
                if let Some(p) = longest(words, start, |s| amount(s).map(|(v, strength)| (v, strength, vec![])))
                    && best.as_ref().is_none_or(|b| p.strength >= b.strength)
                {
                    best = Some(p);
                }
            }
            best
        }
        Kind::Text => {
            let start = words.iter().position(|w| w.chars().any(char::is_alphanumeric))?;
            let text = words[start..].join(" ");
            Some(Parsed { span: start..words.len(), value: json!(text), problems: vec![], strength: 1.0 })
        }
        Kind::Enum => {
            let text = fold(&words.join(" "));
            let value = values.iter().find(|v| text.contains(&fold(v)))?;
            Some(Parsed { span: 0..words.len(), value: json!(value), problems: vec![], strength: 1.0 })
        }
        Kind::Currency => None,
        _ => (0..words.len()).find_map(|start| {
            longest(words, start, |s| single(kind, s, order).map(|(v, problems)| (v, 1.0, problems)))
        }),
    }
}

/// The longest span from `start` that `parse` accepts.
fn longest(words: &[&str], start: usize, parse: impl Fn(&str) -> Option<(Value, f32, Vec<String>)>) -> Option<Parsed> {
    let end_max = (start + MAX_SPAN).min(words.len());
    (start + 1..=end_max).rev().find_map(|end| {
        let (value, strength, problems) = parse(&words[start..end].join(" "))?;
        Some(Parsed { span: start..end, value, problems, strength })
    })
}

fn single(kind: Kind, s: &str, order: DateOrder) -> Option<(Value, Vec<String>)> {
    let ok = |v: Value| Some((v, vec![]));
    match kind {
        Kind::Date => date(s, order).and_then(|d| ok(json!(d.format("%Y-%m-%d").to_string()))),
        Kind::Id => id(s).and_then(|v| ok(json!(v))),
        Kind::Integer => {
            let digits: String = s.chars().filter(|c| !matches!(c, ',' | '.' | '\'' | ' ')).collect();
            (!digits.is_empty() && digits.len() <= 18 && digits.chars().all(|c| c.is_ascii_digit()))
                .then(|| digits.parse::<i64>().ok())
                .flatten()
                .and_then(|n| ok(json!(n)))
        }
        Kind::Percentage => {
            let number = s.strip_suffix('%')?.trim_end();
            let n: f64 = number.replace(',', ".").parse().ok()?;
            (0.0..=100.0).contains(&n).then(|| (json!(n), vec![]))
        }
        Kind::Email => email(s).and_then(|v| ok(json!(v))),
        Kind::Phone => phone(s).and_then(|v| ok(json!(v))),
        Kind::Iban => iban(s),
        Kind::VatId => vat_id(s).and_then(|v| ok(json!(v))),
        Kind::Amount | Kind::Text | Kind::Enum | Kind::Currency => None,
    }
}

const MONTHS: [&[&str]; 12] = [
    &["january", "jan", "januar", "janvier", "janv", "enero", "ene", "gennaio", "gen", "januari", "janeiro", "jänner"],
    &["february", "feb", "februar", "fevrier", "fevr", "febrero", "febbraio", "februari", "fevereiro", "fev"],
    &["march", "mar", "marz", "maerz", "mars", "marzo", "maart", "marco"],
    &["april", "apr", "avril", "avr", "abril", "abr", "aprile"],
    &["may", "mai", "mayo", "maggio", "mag", "mei", "maio"],
    &["june", "jun", "juni", "juin", "junio", "giugno", "giu", "junho"],
    &["july", "jul", "juli", "juillet", "juil", "julio", "luglio", "lug", "julho"],
    &["august", "aug", "aout", "agosto", "ago", "augustus"],
    &["september", "sep", "sept", "septembre", "septiembre", "settembre", "set", "setembro"],
    &["october", "oct", "oktober", "okt", "octobre", "octubre", "ottobre", "ott", "outubro", "out"],
    &["november", "nov", "novembre", "noviembre", "novembro"],
    &["december", "dec", "dezember", "dez", "decembre", "diciembre", "dic", "dicembre", "december", "dezembro"],
];

fn month(word: &str) -> Option<u32> {
    let w = fold(word.trim_end_matches('.'));
    MONTHS.iter().position(|names| names.contains(&w.as_str())).map(|i| i as u32 + 1)
}

fn year(s: &str) -> Option<i32> {
    let y: i32 = s.parse().ok()?;
    match s.len() {
        4 => Some(y),
        2 => Some(if y < 70 { 2000 + y } else { 1900 + y }),
        _ => None,
    }
}

/// `[a, b, year]` of `31/12/2017`, `21.05.14`, `15-10-2015`.
fn numeric_date_parts(s: &str) -> Option<[u32; 3]> {
    let s = s.trim_end_matches('.');
    let sep = s.chars().find(|c| matches!(c, '/' | '.' | '-'))?;
    let parts: Vec<&str> = s.split(sep).collect();
    if parts.len() != 3 || !parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())) {
        return None;
    }
    if parts[0].len() == 4 {
        return None;
    }
    let (a, b) = (parts[0].parse().ok()?, parts[1].parse().ok()?);
    let y = year(parts[2])?;
    (parts[0].len() <= 2 && parts[1].len() <= 2).then_some([a, b, y as u32])
}

pub fn date(s: &str, order: DateOrder) -> Option<chrono::NaiveDate> {
    let ymd = |y: i32, m: u32, d: u32| chrono::NaiveDate::from_ymd_opt(y, m, d);
    // 2014-08-03
    let dashed: Vec<&str> = s.split('-').collect();
    if let [y, m, d] = dashed[..]
        && y.len() == 4
        && let (Ok(y), Ok(m), Ok(d)) = (y.parse(), m.parse(), d.parse())
    {
        return ymd(y, m, d);
    }
    if let Some([a, b, y]) = numeric_date_parts(s) {
        let (day_first, month_first) = (ymd(y as i32, b, a), ymd(y as i32, a, b));
        return match order {
            DateOrder::DayFirst => day_first.or(month_first),
            DateOrder::MonthFirst => month_first.or(day_first),
        };
    }
    // "7. Mai 2014", "02 Juillet 2015", "1er août 2015", "August 3 , 2014", "3rd of May 2014"
    let tokens: Vec<&str> = s
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty() && *t != "of" && *t != "de")
        .collect();
    let day = |t: &str| -> Option<u32> {
        let t = t.trim_end_matches('.');
        let digits = t.trim_end_matches(|c: char| c.is_alphabetic());
        let suffix = &t[digits.len()..];
        let ok_suffix = ["", "st", "nd", "rd", "th", "er", "o", "º"].contains(&suffix);
        (ok_suffix && !digits.is_empty() && digits.len() <= 2).then(|| digits.parse().ok()).flatten()
    };
    match tokens[..] {
        [d, m, y] if day(d).is_some() && month(m).is_some() => ymd(year(y)?, month(m)?, day(d)?),
        [m, d, y] if month(m).is_some() && day(d).is_some() => ymd(year(y)?, month(m)?, day(d)?),
        _ => None,
    }
}

/// Currency marks: symbols and ISO codes, and the code each stands for.
/// Longer marks first: the first that fits is taken.
const CURRENCIES: [(&str, &str); 14] = [
    ("US$", "USD"),
    ("Rs.", "INR"),
    ("$", "USD"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("₹", "INR"),
    ("Rs", "INR"),
    ("¥", "JPY"),
    ("CHF", "CHF"),
    ("USD", "USD"),
    ("EUR", "EUR"),
    ("GBP", "GBP"),
    ("INR", "INR"),
    ("CAD", "CAD"),
];

/// The currency a mark (a word or the start or end of one) stands for.
pub fn currency_of(mark: &str) -> Option<&'static str> {
    CURRENCIES.iter().find(|(m, _)| *m == mark).map(|(_, code)| *code)
}

/// `1.234,56` / `1,234.56` / `34,73` / `1939` → cents. A number without decimals counts
/// only with a currency mark (else every integer on a page would be an amount).
fn number_cents(s: &str) -> Option<(i64, bool)> {
    let negative = s.starts_with('-');
    let s = s.trim_start_matches('-');
    if s.is_empty() || !s.chars().next()?.is_ascii_digit() || !s.chars().last()?.is_ascii_digit() {
        return None;
    }
    if !s.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '\'' | ' ')) {
        return None;
    }
    let last_sep = s.rfind(['.', ',']);
    let (int, frac) = match last_sep {
        Some(i) if (1..=2).contains(&(s.len() - i - 1)) => (&s[..i], &s[i + 1..]),
        _ => (s, ""),
    };
    // Grouping separators only in threes.
    let groups: Vec<&str> = int.split(['.', ',', '\'', ' ']).collect();
    if groups.len() > 1 && (groups[0].is_empty() || groups[0].len() > 3 || groups[1..].iter().any(|g| g.len() != 3)) {
        return None;
    }
    let whole: i64 = groups.concat().parse().ok()?;
    let cents = whole.checked_mul(100)?
        + if frac.len() == 1 { frac.parse::<i64>().ok()? * 10 } else { frac.parse().unwrap_or(0) };
    Some((if negative { -cents } else { cents }, !frac.is_empty()))
}

/// A plain number (a quantity): `2`, `1,5`, `1.000`.
pub fn number(s: &str) -> Option<f64> {
    number_cents(s).map(|(cents, _)| cents as f64 / 100.0)
}

/// An amount: `$4.11`, `29.99 €`, `Rs 1939`, `EUR 34,73`, `34,73`; strength 1 with a
/// currency mark, 0.9 with decimals only.
fn amount(s: &str) -> Option<(Value, f32)> {
    let (mut number, mut currency) = (s, None);
    for (mark, code) in CURRENCIES {
        if let Some(rest) = s.strip_prefix(mark) {
            (number, currency) = (rest.trim_start(), Some(code));
            break;
        }
        if let Some(rest) = s.strip_suffix(mark) {
            (number, currency) = (rest.trim_end(), Some(code));
            break;
        }
    }
    // A mark must stand apart from letters: "Rs" yes, "Rsx" no.
    if number.starts_with(|c: char| c.is_alphabetic()) {
        return None;
    }
    let (cents, decimals) = number_cents(number)?;
    if currency.is_none() && !decimals {
        return None;
    }
    let value = json!({ "amount": cents as f64 / 100.0, "currency": currency });
    Some((value, if currency.is_some() { 1.0 } else { 0.9 }))
}

/// An identifier: one word with a digit in it (`42183017`, `BLR_WFLD2015…`, `4040-0004`);
/// a leading `#`, `:` or `N°` is not part of it.
fn id(s: &str) -> Option<String> {
    if s.contains(' ') {
        return None;
    }
    let v = s.trim_start_matches(['#', ':', '°', 'º']).trim_end_matches([',', ';', '.', ':']);
    let ok = v.len() >= 3
        && v.chars().any(|c| c.is_ascii_digit())
        && v.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '/' | '.'));
    ok.then(|| v.to_string())
}

fn email(s: &str) -> Option<String> {
    let v = s.trim_matches(|c: char| matches!(c, '<' | '>' | ',' | ';' | '(' | ')')).trim_end_matches('.');
    let (user, domain) = v.split_once('@')?;
    let ok = !user.is_empty()
        && !user.contains(' ')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '-'));
    ok.then(|| v.to_string())
}

/// 7 to 15 digits with the usual separators, an optional leading `+`.
fn phone(s: &str) -> Option<String> {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let ok = (7..=15).contains(&digits)
        && s.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '(' | ')' | '-' | '.' | '/'))
        && !s[1..].contains('+')
        && s.starts_with(|c: char| c == '+' || c == '(' || c.is_ascii_digit());
    ok.then(|| s.to_string())
}

/// Without spaces; a wrong check digit keeps the value and says so.
fn iban(s: &str) -> Option<(Value, Vec<String>)> {
    let v: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
    let ok = v.is_ascii()
        && (15..=34).contains(&v.len())
        && v[..2].chars().all(|c| c.is_ascii_uppercase())
        && v[2..4].chars().all(|c| c.is_ascii_digit())
        && v[4..].chars().all(|c| c.is_ascii_alphanumeric());
    if !ok {
        return None;
    }
    let problems = if iban_checks(&v) { vec![] } else { vec!["IBAN check digits do not match".to_string()] };
    Some((json!(v), problems))
}

/// ISO 13616: the country and check digits moved to the end, letters as numbers, mod 97 = 1.
pub fn iban_checks(iban: &str) -> bool {
    let moved = iban[4..].chars().chain(iban[..4].chars());
    let mut rem: u32 = 0;
    for c in moved {
        let n = match c.to_digit(36) {
            Some(n) => n,
            None => return false,
        };
        rem = if n >= 10 { (rem * 100 + n) % 97 } else { (rem * 10 + n) % 97 };
    }
    rem == 1
}

/// An EU-style VAT id: a country prefix and 8–12 characters, at least six of them digits
/// (`DE 232 446 240` → `DE232446240`).
fn vat_id(s: &str) -> Option<String> {
    let v: String = s.chars().filter(|c| !c.is_whitespace() && *c != '.' && *c != '-').collect::<String>();
    let ok = v.is_ascii()
        && (10..=14).contains(&v.len())
        && v[..2].chars().all(|c| c.is_ascii_uppercase())
        && v[2..].chars().all(|c| c.is_ascii_alphanumeric())
        && v[2..].chars().filter(char::is_ascii_digit).count() >= 6
        && s.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    ok.then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(kind: Kind, text: &str) -> Option<Value> {
        let words: Vec<&str> = text.split(' ').collect();
        find(kind, &words, DateOrder::DayFirst, &[]).map(|p| p.value)
    }

    #[test]
    fn dates_in_several_languages_and_orders() {
        for (text, want) in [
            ("August 3 , 2014", "2014-08-03"),
            ("7. Mai 2014", "2014-05-07"),
            ("le 05 Juillet 2015", "2015-07-05"),
            ("20-10-2015", "2015-10-20"),
            ("Date: 31/12/2017", "2017-12-31"),
            ("21.05.14", "2014-05-21"),
            ("2014-08-03", "2014-08-03"),
            ("1er août 2015", "2015-08-01"),
            ("01/31/2009", "2009-01-31"),
        ] {
            assert_eq!(first(Kind::Date, text), Some(json!(want)), "{text}");
        }
        assert_eq!(first(Kind::Date, "31 Juillet"), None);
        let words = ["03/08/2014"];
        assert_eq!(find(Kind::Date, &words, DateOrder::MonthFirst, &[]).unwrap().value, json!("2014-03-08"));
        assert_eq!(DateOrder::of_words(["01/31/2009", "02/03/2009"].into_iter()), DateOrder::MonthFirst);
        assert_eq!(DateOrder::of_words(["31/01/2009", "01/31/2009"].into_iter()), DateOrder::DayFirst);
    }

    #[test]
    fn amounts_take_their_currency_and_the_strongest_rightmost_reading() {
        let amount = |t: &str| first(Kind::Amount, t);
        assert_eq!(amount("ON August 3 , 2014 $4.11"), Some(json!({"amount": 4.11, "currency": "USD"})));
        assert_eq!(amount("29.99 € TTC"), Some(json!({"amount": 29.99, "currency": "EUR"})));
        assert_eq!(amount("Rs 1939"), Some(json!({"amount": 1939.0, "currency": "INR"})));
        assert_eq!(amount("34,73"), Some(json!({"amount": 34.73, "currency": null})));
        assert_eq!(amount("1 278.61 40.39 319.00"), Some(json!({"amount": 319.0, "currency": null})));
        assert_eq!(amount("1.234,56"), Some(json!({"amount": 1234.56, "currency": null})));
        assert_eq!(amount("DE 232 446 240"), None, "integers without a currency are no amounts");
        assert_eq!(amount("12,34,5"), None);
    }

    #[test]
    fn identifiers_ibans_vat_ids_and_contacts() {
        assert_eq!(first(Kind::Id, "# BLR_WFLD20151000982590"), Some(json!("BLR_WFLD20151000982590")));
        assert_eq!(first(Kind::Id, "du 02 Juillet"), None);
        assert_eq!(first(Kind::Id, "562044387 du 02 Juillet 2015"), Some(json!("562044387")));
        assert_eq!(first(Kind::VatId, "DE 232 446 240"), Some(json!("DE232446240")));
        assert_eq!(first(Kind::VatId, ": FR 604 219 388 61"), Some(json!("FR60421938861")));
        let good = find(Kind::Iban, &["IBAN", "DE30507500940000048567"], DateOrder::DayFirst, &[]).unwrap();
        assert!(good.problems.is_empty());
        let bad = find(Kind::Iban, &["DE31", "5075", "0094", "0000", "0485", "67"], DateOrder::DayFirst, &[]).unwrap();
        assert_eq!(bad.value, json!("DE31507500940000048567"));
        assert_eq!(bad.problems, ["IBAN check digits do not match"]);
        assert_eq!(first(Kind::Email, "eMail: info@qualityhosting.de"), Some(json!("info@qualityhosting.de")));
        assert_eq!(first(Kind::Phone, "Tel. +49 6051 916 44 10"), Some(json!("+49 6051 916 44 10")));
        assert_eq!(first(Kind::Percentage, "14.50%"), Some(json!(14.5)));
    }
}
