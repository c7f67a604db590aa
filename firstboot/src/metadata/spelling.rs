//! How numbers are spelled in YAML and TOML files.
//!
//! Both formats read `0x33`, `0o63` or (TOML) `5_1` as the integer 51, and serde hands us
//! only the number. The kernel command line and JSON have one spelling, plain decimal, and
//! so must every source: a second, shallow pass reads the numeric keys' source text (YAML:
//! the scalar as written; TOML: the value's span) and refuses anything but decimal digits,
//! with a fraction for `advert_int`.

use std::ops::Range;

use anyhow::{bail, Result};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A YAML scalar as written (serde_yaml_ng gives a plain scalar's raw text to a string
/// visitor).
struct YamlText(String);

impl<'de> Deserialize<'de> for YamlText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Raw;
        impl Visitor<'_> for Raw {
            type Value = YamlText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<YamlText, E> {
                Ok(YamlText(v.to_owned()))
            }
        }
        d.deserialize_str(Raw)
    }
}

#[derive(Deserialize)]
struct Doc<T> {
    axoha: Option<Numeric<T>>,
}

/// The numeric keys (other keys are skipped: their kinds are checked in `keys_file`).
#[derive(Deserialize)]
struct Numeric<T> {
    vrid: Option<T>,
    priority: Option<T>,
    vrrp_version: Option<T>,
    advert_int: Option<T>,
    health: Option<HealthNumeric<T>>,
}

#[derive(Deserialize)]
struct HealthNumeric<T> {
    interval: Option<T>,
    timeout: Option<T>,
    rise: Option<T>,
    fall: Option<T>,
}

impl<T> Numeric<T> {
    /// (key name, spelling, whether a fraction is allowed)
    fn spellings(self) -> Vec<(&'static str, T, bool)> {
        let health = self.health.map_or(Vec::new(), |h| {
            [
                ("health.interval", h.interval),
                ("health.timeout", h.timeout),
                ("health.rise", h.rise),
                ("health.fall", h.fall),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v, false)))
            .collect()
        });
        [
            ("vrid", self.vrid, false),
            ("priority", self.priority, false),
            ("vrrp_version", self.vrrp_version, false),
            ("advert_int", self.advert_int, true),
        ]
        .into_iter()
        .filter_map(|(k, v, f)| v.map(|v| (k, v, f)))
        .chain(health)
        .collect()
    }
}

fn check(key: &str, text: &str, fraction: bool) -> Result<()> {
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) if fraction => (w, Some(f)),
        _ => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || frac.is_some_and(|f| !digits(f)) {
        bail!(
            "{key}: {} is not written in plain decimal digits (no hex, octal, signs or \
             underscores)",
            crate::log::quote(text)
        );
    }
    Ok(())
}

/// Refuses numeric keys of a NoCloud `meta-data` not written in decimal.
pub fn check_yaml(text: &str) -> Result<()> {
    // Only called once the document parsed with every numeric key a scalar.
    let Ok(doc) = serde_yaml_ng::from_str::<Doc<YamlText>>(text) else {
        return Ok(());
    };
    for (key, YamlText(spelled), fraction) in doc.axoha.map(Numeric::spellings).unwrap_or_default()
    {
        check(key, &spelled, fraction)?;
    }
    Ok(())
}

/// Refuses numeric keys of a cluster.toml not written in decimal (a string is checked by
/// its type's parser, which takes decimal text only).
pub fn check_toml(text: &str) -> Result<()> {
    let Ok(numeric) = toml::from_str::<Numeric<toml::Spanned<toml::Value>>>(text) else {
        return Ok(());
    };
    for (key, value, fraction) in numeric.spellings() {
        let span: Range<usize> = value.span();
        if matches!(
            value.get_ref(),
            toml::Value::Integer(_) | toml::Value::Float(_)
        ) {
            check(key, text.get(span).unwrap_or(""), fraction)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_decimal_spellings() {
        assert!(check_yaml("axoha:\n  vrid: 51\n  advert_int: 0.25\n").is_ok());
        assert!(check_yaml("axoha:\n  vrid: \"51\"\n").is_ok());
        for bad in ["0x33", "0o63", "+51", "0b110011"] {
            let err = check_yaml(&format!("axoha:\n  vrid: {bad}\n")).unwrap_err();
            assert!(err.to_string().starts_with("vrid"), "{err}");
            let err = check_toml(&format!("[health]\nfall = {bad}\n")).unwrap_err();
            assert!(err.to_string().starts_with("health.fall"), "{err}");
        }
        assert!(check_toml("vrid = 5_1\n").is_err());
        assert!(check_toml("advert_int = 1e0\n").is_err());
        assert!(check_toml("vrid = 51\nadvert_int = 0.2\n[health]\nfall = 3\n").is_ok());
    }
}
