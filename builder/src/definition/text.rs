//! How a definition value type meets serde: read as the string the file holds and parsed by
//! its `FromStr`, written back as its `Display` (the same text, so a definition's hash does not
//! change with its types). The error is the type's reason; TOML's message around it shows the
//! line, the key and the value.

use std::fmt::Display;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serializer};

/// Serde by `FromStr` and `Display` for each of the given types.
macro_rules! serde_by_str {
    ($($t:ty),+ $(,)?) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::definition::text::parse(d)
            }
        }
    )+};
}
pub(crate) use serde_by_str;

/// A string value parsed by `T`'s `FromStr`.
pub fn parse<'de, D: Deserializer<'de>, T>(d: D) -> Result<T, D::Error>
where
    T: FromStr<Err = anyhow::Error>,
{
    let text = String::deserialize(d)?;
    text.parse()
        .map_err(|e: anyhow::Error| de::Error::custom(format!("{e:#}")))
}

/// `#[serde(with = "unset_if_empty")]`: an optional value the file writes as `""` when unset
/// (the default definition lists every key that way).
pub mod unset_if_empty {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>, T>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr<Err = anyhow::Error>,
    {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|e: anyhow::Error| de::Error::custom(format!("{e:#}")))
    }

    pub fn serialize<S: Serializer, T: Display>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_str(""),
        }
    }
}

/// Refuses whitespace and control characters: the value is one word on a command line or in a
/// configuration file.
pub fn one_word(s: &str, what: &str) -> anyhow::Result<()> {
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!("{s:?}: {what} has no whitespace or control characters ({c:?})");
    }
    Ok(())
}

/// Why `s` is refused as a `T` (tests: each type's errors name the value).
#[cfg(test)]
pub fn refused<T: FromStr<Err = anyhow::Error> + std::fmt::Debug>(s: &str) -> String {
    format!("{:#}", s.parse::<T>().unwrap_err())
}
