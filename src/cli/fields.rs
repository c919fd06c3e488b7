//! Customer fields given as command-line flags (`icsync add`, `icsync edit`), turned into a
//! request body. Pure: the contract validates the result, so messages match the server's.

use clap::Args;
use serde_json::{Map, Value};

/// The contract's fields as flags. Values are passed through as given; validation happens
/// once, with the contract's own rules.
#[derive(Debug, Clone, Default, Args)]
pub struct CustomerFields {
    /// Full name (1 to 255 characters; `add` needs it, `edit` changes it).
    #[arg(long)]
    pub full_name: Option<String>,
    /// Email address; matched case-insensitively.
    #[arg(long)]
    pub email: Option<String>,
    /// Your CRM's identifier for this customer (strongly recommended).
    #[arg(long)]
    pub external_id: Option<String>,
    /// INDIVIDUAL (default) or SOLE_TRADER.
    #[arg(long = "type", value_name = "TYPE")]
    pub customer_type: Option<String>,
    /// Trading name, for a SOLE_TRADER.
    #[arg(long)]
    pub trading_name: Option<String>,
    /// Phone: digits with an optional leading +; spaces and dashes allowed.
    #[arg(long)]
    pub phone: Option<String>,
    /// A risk pre-answer, repeatable: occupation, source_of_funds, country_of_residence
    /// (ISO alpha-2), expected_monthly_volume (whole number), is_pep (true/false).
    #[arg(long = "risk", value_name = "KEY=VALUE")]
    pub risk: Vec<String>,
    /// Clear a field (send it as null), repeatable: e.g. --clear phone, --clear risk.is_pep.
    #[arg(long = "clear", value_name = "FIELD")]
    pub clear: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldsError {
    #[error("--risk {0}: expected KEY=VALUE, e.g. --risk is_pep=false")]
    RiskSyntax(String),
}

fn risk_value(key: &str, value: &str) -> Value {
    // Typed answers are converted when they parse; otherwise the text goes through so the
    // contract names the field and the rule.
    match key {
        "expected_monthly_volume" | "expectedMonthlyVolume" => value
            .trim()
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(value)),
        "is_pep" | "isPep" => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" => Value::Bool(true),
            "false" | "no" => Value::Bool(false),
            _ => Value::from(value),
        },
        _ => Value::from(value),
    }
}

impl CustomerFields {
    /// The members these flags set, as a JSON object (absent flags are absent members).
    pub fn to_body(&self) -> Result<Value, FieldsError> {
        let mut m = Map::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                m.insert(k.to_string(), Value::from(v.as_str()));
            }
        };
        put("type", &self.customer_type);
        put("full_name", &self.full_name);
        put("email", &self.email);
        put("external_id", &self.external_id);
        put("trading_name", &self.trading_name);
        put("phone", &self.phone);
        let mut risk = Map::new();
        for pair in &self.risk {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| FieldsError::RiskSyntax(pair.clone()))?;
            risk.insert(k.trim().to_string(), risk_value(k.trim(), v));
        }
        for field in &self.clear {
            match field.strip_prefix("risk.") {
                Some(k) => {
                    risk.insert(k.to_string(), Value::Null);
                }
                None => {
                    m.insert(field.clone(), Value::Null);
                }
            }
        }
        if !risk.is_empty() {
            m.insert("risk".into(), Value::Object(risk));
        }
        Ok(Value::Object(m))
    }

    pub fn is_empty(&self) -> bool {
        self.to_body()
            .map(|b| b.as_object().is_some_and(Map::is_empty))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flags_become_members_and_risk_answers_are_typed() {
        let f = CustomerFields {
            full_name: Some("Ada".into()),
            customer_type: Some("SOLE_TRADER".into()),
            risk: vec![
                "is_pep=no".into(),
                "expected_monthly_volume=2500".into(),
                "country_of_residence=GB".into(),
            ],
            ..Default::default()
        };
        assert_eq!(
            f.to_body().unwrap(),
            json!({"full_name": "Ada", "type": "SOLE_TRADER",
                   "risk": {"is_pep": false, "expected_monthly_volume": 2500,
                            "country_of_residence": "GB"}})
        );
    }

    #[test]
    fn untyped_values_pass_through_for_the_contract_to_judge() {
        let f = CustomerFields {
            risk: vec!["expected_monthly_volume=lots".into()],
            ..Default::default()
        };
        assert_eq!(
            f.to_body().unwrap(),
            json!({"risk": {"expected_monthly_volume": "lots"}})
        );
        let f = CustomerFields {
            risk: vec!["oops".into()],
            ..Default::default()
        };
        assert_eq!(f.to_body(), Err(FieldsError::RiskSyntax("oops".into())));
    }

    #[test]
    fn clear_sends_null() {
        let f = CustomerFields {
            clear: vec!["phone".into(), "risk.is_pep".into()],
            ..Default::default()
        };
        assert_eq!(
            f.to_body().unwrap(),
            json!({"phone": null, "risk": {"is_pep": null}})
        );
        assert!(!f.is_empty());
        assert!(CustomerFields::default().is_empty());
    }
}
