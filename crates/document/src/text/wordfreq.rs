//! How common an English word is: wordfreq's list (Speer, 2022; `models/cache/wordfreq/`,
//! fetched from PyPI by `scripts/fetch_models.py`). Study material uses it to tell the words
//! a document is about from words any text uses.
//!
//! The file is wordfreq's "cBpack": gzipped MessagePack, an array whose first element is a
//! header (`{"format": "cB", "version": 1}`) and whose element `i` (from 1) lists the words
//! with frequency 10^(−i/100), most frequent first.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum WordFreqError {
    #[error("read {path}: {source} (run scripts/setup.sh)")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not a wordfreq cBpack: {why}")]
    Format { path: String, why: String },
}

#[derive(Debug, Default)]
pub struct WordFreq {
    /// Word → (Zipf frequency, rank from 0 = most frequent).
    words: HashMap<String, (f32, u32)>,
}

/// Zipf value given to words the list does not have (it stops at 3.0, once per million words).
pub const UNLISTED_ZIPF: f32 = 2.5;

impl WordFreq {
    pub fn load(path: &Path) -> Result<Self, WordFreqError> {
        let read_error = |source| WordFreqError::Read { path: path.display().to_string(), source };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(file).read_to_end(&mut bytes).map_err(read_error)?;
        Self::from_cbpack(&bytes)
            .map_err(|why| WordFreqError::Format { path: path.display().to_string(), why: why.to_string() })
    }

    fn from_cbpack(bytes: &[u8]) -> Result<Self, &'static str> {
        let mut r = Reader { bytes, at: 0 };
        let bins = r.array()?;
        if bins == 0 {
            return Err("empty");
        }
        r.skip()?; // header
        let mut words = HashMap::new();
        let mut rank = 0u32;
        for centibels in 1..bins {
            let zipf = 9.0 - centibels as f32 / 100.0;
            for _ in 0..r.array()? {
                words.entry(r.string()?.to_string()).or_insert((zipf, rank));
                rank += 1;
            }
        }
        Ok(Self { words })
    }

    /// Zipf frequency: log10 of occurrences per billion words ("the" ≈ 7.7, "polariton"
    /// unlisted); [`UNLISTED_ZIPF`] for a word the list does not have.
    pub fn zipf(&self, word: &str) -> f32 {
        self.words.get(word).map_or(UNLISTED_ZIPF, |w| w.0)
    }

    /// True when `word` is among the `n` most frequent English words.
    pub fn is_top(&self, word: &str, n: u32) -> bool {
        self.words.get(word).is_some_and(|w| w.1 < n)
    }
}

/// The few MessagePack types a cBpack holds: arrays, maps, strings and small integers.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let out = self.bytes.get(self.at..self.at + n).ok_or("truncated")?;
        self.at += n;
        Ok(out)
    }

    fn uint(&mut self, n: usize) -> Result<usize, &'static str> {
        Ok(self.take(n)?.iter().fold(0usize, |acc, &b| acc << 8 | b as usize))
    }

    fn array(&mut self) -> Result<usize, &'static str> {
        match self.take(1)?[0] {
            b @ 0x90..=0x9f => Ok((b & 0x0f) as usize),
            0xdc => self.uint(2),
            0xdd => self.uint(4),
            _ => Err("expected an array"),
        }
    }

    fn string(&mut self) -> Result<&'a str, &'static str> {
        let n = match self.take(1)?[0] {
            b @ 0xa0..=0xbf => (b & 0x1f) as usize,
            0xd9 => self.uint(1)?,
            0xda => self.uint(2)?,
            0xdb => self.uint(4)?,
            _ => return Err("expected a string"),
        };
        std::str::from_utf8(self.take(n)?).map_err(|_| "a word is not UTF-8")
    }

    /// Skips one value of any type the header may use.
    fn skip(&mut self) -> Result<(), &'static str> {
        let tag = self.bytes.get(self.at).copied().ok_or("truncated")?;
        match tag {
            0x00..=0x7f => self.at += 1,
            0x80..=0x8f => {
                self.at += 1;
                for _ in 0..2 * (tag & 0x0f) {
                    self.skip()?;
                }
            }
            0x90..=0x9f | 0xdc | 0xdd => {
                for _ in 0..self.array()? {
                    self.skip()?;
                }
            }
            0xa0..=0xbf | 0xd9..=0xdb => {
                self.string()?;
            }
            _ => return Err("unexpected type in the header"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_cbpack() {
        // [{"format": "cB"}, [], ["the", "of"], ["polariton"]]
        let mut b = vec![0x94, 0x81, 0xa6];
        b.extend(b"format");
        b.push(0xa2);
        b.extend(b"cB");
        b.push(0x90);
        b.extend([0x92, 0xa3]);
        b.extend(b"the");
        b.push(0xa2);
        b.extend(b"of");
        b.extend([0x91, 0xa9]);
        b.extend(b"polariton");
        let f = WordFreq::from_cbpack(&b).unwrap();
        assert_eq!(f.zipf("the"), 8.98);
        assert_eq!(f.zipf("polariton"), 8.97);
        assert_eq!(f.zipf("absent"), UNLISTED_ZIPF);
        assert!(f.is_top("of", 2) && !f.is_top("polariton", 2));
        assert!(WordFreq::from_cbpack(&b[..10]).is_err());
    }
}
