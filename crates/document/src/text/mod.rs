//! Text analysis the stages share: a page as blocks in reading order ([`blocks`],
//! [`reading_order`]) and a text's language ([`language`]).

pub mod blocks;
pub mod language;
pub mod reading_order;
