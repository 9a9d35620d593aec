//! Text analysis the stages share: a page as blocks in reading order ([`blocks`],
//! [`reading_order`]), a text's language ([`language`]) and how common a word is ([`wordfreq`]).

pub mod blocks;
pub mod language;
pub mod reading_order;
pub mod wordfreq;
