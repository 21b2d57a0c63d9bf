//! Numbers as people write them in study files: `1e6`, `"1e6"`, `500k`, `2M`, `1.5B`.
//!
//! YAML 1.2 reads `1e6` as a float and `"1e6"`/`500k` as strings; scaling studies are full of
//! such numbers, so every count and real in the file goes through these two types. They parse
//! at deserialisation time (so the error carries the YAML position) and serialise back as
//! plain numbers.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A non-negative whole number: parameters, tokens, steps, resamples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Count(pub u64);

/// A finite real number that may also be written as a string (`"3e-3"`) or with a
/// magnitude suffix (`2e13`, `"1.5T"`): learning rates, fractions, FLOP budgets.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Real(pub f64);

const SUFFIXES: [(char, f64); 5] = [('k', 1e3), ('m', 1e6), ('b', 1e9), ('g', 1e9), ('t', 1e12)];

/// Parse `1e6`, `1.5B`, `500k`, `2_000_000`; `None` when the text is not a number.
/// Suffixes are case-insensitive: k = 1e3, M = 1e6, B/G = 1e9, T = 1e12.
pub fn parse_real(text: &str) -> Option<f64> {
    let cleaned: String = text.trim().chars().filter(|c| *c != '_').collect();
    if cleaned.is_empty() {
        return None;
    }
    let last = cleaned.chars().last()?.to_ascii_lowercase();
    let (digits, scale) = match SUFFIXES.iter().find(|(s, _)| *s == last) {
        Some((_, scale)) => (&cleaned[..cleaned.len() - 1], *scale),
        None => (cleaned.as_str(), 1.0),
    };
    // `f64::from_str` accepts "inf" and "nan"; a study never means those.
    if !digits
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    let value: f64 = digits.parse().ok()?;
    let value = value * scale;
    value.is_finite().then_some(value)
}

/// Parse a whole, non-negative count; `Err` says why not.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let value = parse_real(text).ok_or_else(|| {
        format!("expected a count such as 2000000, 2e6, 500k, 2M or 1.5B, found `{text}`")
    })?;
    count_from_f64(value).map_err(|why| format!("{why}, found `{text}`"))
}

fn count_from_f64(value: f64) -> Result<u64, String> {
    if value < 0.0 {
        return Err("expected a non-negative count".into());
    }
    if value.fract() != 0.0 {
        return Err("expected a whole number".into());
    }
    if value > u64::MAX as f64 {
        return Err("count is too large".into());
    }
    Ok(value as u64)
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl Visitor<'_> for CountVisitor {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count such as 2000000, 2e6, 500k, 2M or 1.5B")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                u64::try_from(v)
                    .map(Count)
                    .map_err(|_| E::custom(format!("expected a non-negative count, found {v}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Count, E> {
                count_from_f64(v)
                    .map(Count)
                    .map_err(|why| E::custom(format!("{why}, found {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Count, E> {
                parse_count(v).map(Count).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(CountVisitor)
    }
}

impl<'de> Deserialize<'de> for Real {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RealVisitor;
        impl Visitor<'_> for RealVisitor {
            type Value = Real;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number such as 3e-3, 0.05 or 2e13")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Real, E> {
                Ok(Real(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Real, E> {
                Ok(Real(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Real, E> {
                if v.is_finite() {
                    Ok(Real(v))
                } else {
                    Err(E::custom(format!("expected a finite number, found {v}")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Real, E> {
                parse_real(v).map(Real).ok_or_else(|| {
                    E::custom(format!(
                        "expected a number such as 3e-3, 0.05 or 2e13, found `{v}`"
                    ))
                })
            }
        }
        deserializer.deserialize_any(RealVisitor)
    }
}

/// One real or a list of them (`lr: 3e-3` or `lr: [1e-3, 2e-3, 4e-3]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reals(pub Vec<Real>);

impl<'de> Deserialize<'de> for Reals {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::IntoDeserializer;
        struct RealsVisitor;
        impl<'de> Visitor<'de> for RealsVisitor {
            type Value = Reals;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number such as 3e-3, or a list of numbers such as [1e-3, 2e-3]")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Reals, E> {
                Real::deserialize(v.into_deserializer()).map(|r| Reals(vec![r]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Reals, E> {
                Real::deserialize(v.into_deserializer()).map(|r| Reals(vec![r]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Reals, E> {
                Real::deserialize(v.into_deserializer()).map(|r| Reals(vec![r]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Reals, E> {
                Real::deserialize(v.into_deserializer()).map(|r| Reals(vec![r]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Reals, A::Error> {
                let mut out = Vec::new();
                while let Some(r) = seq.next_element::<Real>()? {
                    out.push(r);
                }
                Ok(Reals(out))
            }
        }
        deserializer.deserialize_any(RealsVisitor)
    }
}

impl Serialize for Reals {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0[..] {
            [one] => one.serialize(serializer),
            many => many.serialize(serializer),
        }
    }
}

impl JsonSchema for Reals {
    fn schema_name() -> Cow<'static, str> {
        "Reals".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let one = generator.subschema_for::<Real>();
        json_schema!({
            "description": "A number, or a list of numbers (each value is swept).",
            "anyOf": [ one, { "type": "array", "items": one, "minItems": 1 } ]
        })
    }
}

/// One count or a list of them (`batch: 32` or `batch: [16, 32, 64]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Counts(pub Vec<Count>);

impl<'de> Deserialize<'de> for Counts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::IntoDeserializer;
        struct CountsVisitor;
        impl<'de> Visitor<'de> for CountsVisitor {
            type Value = Counts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count such as 32, or a list of counts such as [16, 32, 64]")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Counts, E> {
                Ok(Counts(vec![Count(v)]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Counts, E> {
                Count::deserialize(v.into_deserializer()).map(|c| Counts(vec![c]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Counts, E> {
                Count::deserialize(v.into_deserializer()).map(|c| Counts(vec![c]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Counts, E> {
                Count::deserialize(v.into_deserializer()).map(|c| Counts(vec![c]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Counts, A::Error> {
                let mut out = Vec::new();
                while let Some(c) = seq.next_element::<Count>()? {
                    out.push(c);
                }
                Ok(Counts(out))
            }
        }
        deserializer.deserialize_any(CountsVisitor)
    }
}

impl Serialize for Counts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0[..] {
            [one] => one.serialize(serializer),
            many => many.serialize(serializer),
        }
    }
}

impl JsonSchema for Counts {
    fn schema_name() -> Cow<'static, str> {
        "Counts".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let one = generator.subschema_for::<Count>();
        json_schema!({
            "description": "A count, or a list of counts (each value is swept).",
            "anyOf": [ one, { "type": "array", "items": one, "minItems": 1 } ]
        })
    }
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl Serialize for Real {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0)
    }
}

/// The pattern editors use to accept count strings; keep it in step with [`parse_real`].
const NUMBER_PATTERN: &str = r"^\s*[0-9][0-9_]*(\.[0-9_]*)?([eE][+-]?[0-9]+)?\s*[kKmMbBgGtT]?\s*$";

impl JsonSchema for Count {
    fn schema_name() -> Cow<'static, str> {
        "Count".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A whole number; also written 2e6, \"2e6\", 500k, 2M or 1.5B.",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "number", "minimum": 0 },
                { "type": "string", "pattern": NUMBER_PATTERN }
            ]
        })
    }
}

impl JsonSchema for Real {
    fn schema_name() -> Cow<'static, str> {
        "Real".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A finite number; also written as a string such as \"3e-3\" or \"2e13\".",
            "anyOf": [
                { "type": "number" },
                { "type": "string", "pattern": r"^\s*[+-]?[0-9][0-9_]*(\.[0-9_]*)?([eE][+-]?[0-9]+)?\s*[kKmMbBgGtT]?\s*$" }
            ]
        })
    }
}

/// Compact, lossless display of a count for names: 1000000 → `1e6`, 1500000 → `1.5e6`,
/// 1234567 → `1234567`. Used in readable run names (`l4-d128-t1e6`).
pub fn compact_count(value: u64) -> String {
    if value < 1000 {
        return value.to_string();
    }
    let digits = value.to_string();
    let trimmed = digits.trim_end_matches('0');
    let exponent = digits.len() - 1;
    // Only use scientific form when it is shorter and exact.
    if trimmed.len() <= 3 {
        let (head, tail) = trimmed.split_at(1);
        if tail.is_empty() {
            format!("{head}e{exponent}")
        } else {
            format!("{head}.{tail}e{exponent}")
        }
    } else {
        digits
    }
}

/// Human display for tables: 1234567 → `1.23M`.
pub fn human(value: f64) -> String {
    let abs = value.abs();
    let (scaled, suffix) = if abs >= 1e15 {
        return format!("{value:.2e}");
    } else if abs >= 1e12 {
        (value / 1e12, "T")
    } else if abs >= 1e9 {
        (value / 1e9, "B")
    } else if abs >= 1e6 {
        (value / 1e6, "M")
    } else if abs >= 1e3 {
        (value / 1e3, "k")
    } else {
        return format!("{value:.0}");
    };
    let text = if scaled.abs() >= 100.0 {
        format!("{scaled:.0}")
    } else if scaled.abs() >= 10.0 {
        format!("{scaled:.1}")
    } else {
        format!("{scaled:.2}")
    };
    format!("{text}{suffix}")
}

/// Durations for people: `45s`, `3m12s`, `2h05m`.
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spellings_people_use() {
        assert_eq!(parse_count("1e6"), Ok(1_000_000));
        assert_eq!(parse_count("500k"), Ok(500_000));
        assert_eq!(parse_count("2M"), Ok(2_000_000));
        assert_eq!(parse_count("1.5B"), Ok(1_500_000_000));
        assert_eq!(parse_count("2_000"), Ok(2000));
        assert_eq!(parse_count(" 3T "), Ok(3_000_000_000_000));
        assert!(parse_count("1.5").unwrap_err().contains("whole number"));
        assert!(parse_count("-5").unwrap_err().contains("non-negative"));
        assert!(parse_count("lots").unwrap_err().contains("`lots`"));
        assert!(parse_count("inf").is_err());
        assert!(parse_count("nan").is_err());
        assert!(parse_count("").is_err());
        assert!(parse_count("1e400").is_err());
        assert_eq!(parse_real("3e-3"), Some(0.003));
        assert_eq!(parse_real("-0.5"), Some(-0.5));
    }

    #[test]
    fn deserialises_from_yaml_numbers_and_strings() {
        let values: Vec<Count> =
            serde_saphyr::from_str("[1e6, \"1e6\", 500k, 2M, 1.5B, 7]").unwrap();
        let raw: Vec<u64> = values.iter().map(|c| c.0).collect();
        assert_eq!(
            raw,
            vec![1_000_000, 1_000_000, 500_000, 2_000_000, 1_500_000_000, 7]
        );
        let reals: Vec<Real> = serde_saphyr::from_str("[3e-3, \"1e18\", 0.05, 2]").unwrap();
        assert_eq!(reals[0].0, 0.003);
        assert_eq!(reals[1].0, 1e18);
        assert!(serde_saphyr::from_str::<Count>("1.5").is_err());
        assert!(serde_saphyr::from_str::<Count>("-3").is_err());
    }

    #[test]
    fn compact_names_are_exact() {
        assert_eq!(compact_count(1_000_000), "1e6");
        assert_eq!(compact_count(1_500_000), "1.5e6");
        assert_eq!(compact_count(200_000), "2e5");
        assert_eq!(compact_count(1_234_567), "1234567");
        assert_eq!(compact_count(999), "999");
        assert_eq!(compact_count(196_608), "196608");
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(1_234_567.0), "1.23M");
        assert_eq!(human(124_439_808.0), "124M");
        assert_eq!(human(512.0), "512");
        assert_eq!(human(2.5e13), "25.0T");
        assert_eq!(format_duration(44.6), "45s");
        assert_eq!(format_duration(192.0), "3m12s");
        assert_eq!(format_duration(7500.0), "2h05m");
    }
}
