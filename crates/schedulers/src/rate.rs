//! Bounds on the learning rate — `min_lr`, `max_lr` — written as a rate or relative to the base
//! rate, so that an arm's bounds follow the optimizer's rate.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A learning rate written as a number, or as a multiple of the optimizer's base rate.
///
/// | written | meaning |
/// | --- | --- |
/// | `1e-2` | the rate 0.01, whatever the base rate |
/// | `"10x"` | ten times the base rate |
/// | `"0.01x"` | a hundredth of the base rate |
///
/// Relative bounds keep an adaptive schedule's room to move the same when the base rate
/// changes: `max_lr = "10x"` allows a tenfold rise at lr 1e-3 and at lr 3e-5 alike, where an
/// absolute `max_lr = 1e-2` would allow 10× at the one and 333× at the other.
///
/// ```
/// use lrlab_schedulers::Rate;
/// let bound: Rate = serde_json::from_str("\"10x\"")?;
/// assert_eq!(bound.of(1e-3), 1e-2);
/// assert_eq!(serde_json::from_str::<Rate>("0.01")?.of(3e-5), 0.01);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// This rate.
    Absolute(f64),
    /// This multiple of the base rate (`"10x"`).
    Times(f64),
}

impl Rate {
    /// The rate for an optimizer whose base rate is `base_lr`.
    pub fn of(self, base_lr: f64) -> f64 {
        match self {
            Rate::Absolute(rate) => rate,
            Rate::Times(multiple) => multiple * base_lr,
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Absolute(rate) => write!(f, "{rate}"),
            Rate::Times(multiple) => write!(f, "\"{multiple}x\""),
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Rate::Absolute(rate) => serializer.serialize_f64(*rate),
            Rate::Times(multiple) => serializer.serialize_str(&format!("{multiple}x")),
        }
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RateVisitor)
    }
}

struct RateVisitor;

const EXPECTED: &str = "a rate (a number) or a multiple of the base rate such as \"10x\"";

impl serde::de::Visitor<'_> for RateVisitor {
    type Value = Rate;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_f64<E: serde::de::Error>(self, rate: f64) -> Result<Rate, E> {
        Ok(Rate::Absolute(rate))
    }

    fn visit_i64<E: serde::de::Error>(self, rate: i64) -> Result<Rate, E> {
        Ok(Rate::Absolute(rate as f64))
    }

    fn visit_u64<E: serde::de::Error>(self, rate: u64) -> Result<Rate, E> {
        Ok(Rate::Absolute(rate as f64))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Rate, E> {
        let fail = || E::custom(format!("\"{text}\": expected {EXPECTED}"));
        let multiple: f64 = text
            .trim()
            .strip_suffix('x')
            .ok_or_else(fail)?
            .trim()
            .parse()
            .map_err(|_| fail())?;
        match multiple.is_finite() && multiple >= 0.0 {
            true => Ok(Rate::Times(multiple)),
            false => Err(fail()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Rate, String> {
        #[derive(Deserialize)]
        struct Holder {
            rate: Rate,
        }
        toml::from_str::<Holder>(&format!("rate = {text}"))
            .map(|h| h.rate)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn rates_and_multiples_read_and_write_back() {
        assert_eq!(parse("1e-2"), Ok(Rate::Absolute(0.01)));
        assert_eq!(parse("1"), Ok(Rate::Absolute(1.0)));
        assert_eq!(parse("\"10x\""), Ok(Rate::Times(10.0)));
        assert_eq!(parse("\"0.01 x\""), Ok(Rate::Times(0.01)));
        for rate in [Rate::Absolute(3e-5), Rate::Times(0.5)] {
            let json = serde_json::to_string(&rate).unwrap();
            assert_eq!(serde_json::from_str::<Rate>(&json).unwrap(), rate);
        }
        assert_eq!(Rate::Times(10.0).of(1e-3), 1e-2);
        assert_eq!(Rate::Absolute(0.5).of(1e-3), 0.5);
    }

    #[test]
    fn malformed_rates_say_what_is_accepted() {
        for bad in ["\"10\"", "\"x\"", "\"-2x\"", "\"infx\"", "\"ten x\""] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("\"10x\""), "{bad}: {err}");
        }
    }
}
