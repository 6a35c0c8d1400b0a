//! Parsers of command-line values with a range, so that a value out of range is refused by
//! clap with the flag's name, before any work starts.

/// A number within the open interval (0, 1): a validation fraction.
pub fn fraction(text: &str) -> Result<f64, String> {
    let value = number(text)?;
    match value > 0.0 && value < 1.0 {
        true => Ok(value),
        false => Err(format!("{value} must lie in (0, 1)")),
    }
}

/// A number within [0, 1]: an accuracy.
pub fn share(text: &str) -> Result<f64, String> {
    let value = number(text)?;
    match (0.0..=1.0).contains(&value) {
        true => Ok(value),
        false => Err(format!("{value} must lie in [0, 1]")),
    }
}

/// A finite number > 0: a learning rate.
pub fn rate(text: &str) -> Result<f64, String> {
    let value = number(text)?;
    match value.is_finite() && value > 0.0 {
        true => Ok(value),
        false => Err(format!("{value} must be a finite rate > 0")),
    }
}

/// A sequence length with room for `[CLS]` and `[SEP]`: at least 2.
pub fn tokens(text: &str) -> Result<usize, String> {
    let value: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of tokens"))?;
    match value >= 2 {
        true => Ok(value),
        false => Err(format!(
            "{value} leaves no room for [CLS] and [SEP]: at least 2"
        )),
    }
}

fn number(text: &str) -> Result<f64, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_out_of_range_are_refused() {
        assert_eq!(fraction("0.1"), Ok(0.1));
        assert_eq!(share("1"), Ok(1.0));
        assert_eq!(rate("3e-5"), Ok(3e-5));
        assert_eq!(tokens("2"), Ok(2));
        for bad in ["0", "1", "-0.1", "nan", "x"] {
            assert!(fraction(bad).is_err(), "{bad}");
        }
        for bad in ["-0.5", "1.5", "nan"] {
            assert!(share(bad).is_err(), "{bad}");
        }
        for bad in ["0", "-1", "inf", "nan"] {
            assert!(rate(bad).is_err(), "{bad}");
        }
        for bad in ["1", "0", "-2", "two"] {
            assert!(tokens(bad).is_err(), "{bad}");
        }
    }
}
