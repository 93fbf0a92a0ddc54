//! HotspotSystem v2.0 wire types (reference §5, §7).
//!
//! The sources disagree on types, so every numeric-looking field accepts a number or a string,
//! every field may be absent or null, and unknown fields are ignored. Dates come in two forms
//! (`YYYY-MM-DD HH:MM:SS` and ISO-8601 with `.000Z`); both parse to UTC.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Lenient field deserializers, shared with the GHL wire types.
pub mod lenient {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    use serde::{Deserialize, Deserializer, de::Error};
    use serde_json::Value;

    /// A string, or a number/bool rendered as one; null and "" become None.
    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(other) => return Err(D::Error::custom(format!("expected a string, got {other}"))),
        })
    }

    /// An integer given as a number or a numeric string.
    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => Some(i),
                None => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 => Some(f as i64),
                    _ => return Err(D::Error::custom(format!("expected an integer, got {n}"))),
                },
            },
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(
                s.trim()
                    .parse()
                    .map_err(|_| D::Error::custom(format!("expected an integer, got {s:?}")))?,
            ),
            Some(Value::Bool(b)) => Some(b as i64),
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "expected an integer, got {other}"
                )));
            }
        })
    }

    /// A decimal given as a number or a numeric string.
    pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(
                s.trim()
                    .parse()
                    .map_err(|_| D::Error::custom(format!("expected a number, got {s:?}")))?,
            ),
            Some(other) => return Err(D::Error::custom(format!("expected a number, got {other}"))),
        })
    }

    /// true/false, 1/0, "1"/"0", "true"/"false".
    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            Some(Value::Number(n)) => Some(n.as_f64().unwrap_or(0.0) != 0.0),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "" => None,
                "1" | "true" | "yes" => Some(true),
                "0" | "false" | "no" => Some(false),
                _ => return Err(D::Error::custom(format!("expected a boolean, got {s:?}"))),
            },
            Some(other) => {
                return Err(D::Error::custom(format!("expected a boolean, got {other}")));
            }
        })
    }

    /// Parses `YYYY-MM-DD HH:MM:SS` (taken as UTC), RFC 3339 / ISO-8601 with or without zone
    /// and fraction, or a bare `YYYY-MM-DD`.
    pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
        let s = s.trim();
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return Some(dt.with_timezone(&Utc));
        }
        for fmt in [
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M:%S%.f",
        ] {
            if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
                return Some(n.and_utc());
            }
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|n| n.and_utc())
    }

    pub fn opt_datetime<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        match opt_string(d)? {
            None => Ok(None),
            Some(s) => parse_datetime(&s)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("unrecognised date {s:?}"))),
        }
    }

    /// A list that may arrive as null.
    pub fn vec_or_null<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
    }
}

/// `/me`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Owner {
    #[serde(rename = "userId", deserialize_with = "lenient::opt_string")]
    pub user_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub operator: Option<String>,
}

/// `/ping`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pong {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub ping: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Location {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
}

/// A customer or a subscriber (same shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Customer {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub user_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub email: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub company_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub address: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub city: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub state: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub zip: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub country_code: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub phone: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub social_network: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub social_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub social_username: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub social_link: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub social_gender: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub social_age_range: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub social_followers_count: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub registered_at: Option<DateTime<Utc>>,
}

/// Fields common to every transaction type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransactionCommon {
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub id: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub operator: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub location_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub user_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub customer: Option<String>,
    #[serde(deserialize_with = "lenient::opt_datetime")]
    pub action_date_gmt: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub user_agent: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub newsletter: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub company_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub email: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub address: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub city: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub state: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub zip: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub country_code: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MacTransaction {
    #[serde(flatten)]
    pub common: TransactionCommon,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub package_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub q1: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub a1: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub q2: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub a2: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub q3: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub a3: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub q4: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub a4: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub q5: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub a5: Option<String>,
}

/// Voucher and paid transactions have identical field sets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PaidTransaction {
    #[serde(flatten)]
    pub common: TransactionCommon,
    #[serde(deserialize_with = "lenient::opt_f64")]
    pub amount: Option<f64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub currency: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub language: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub smscountry: Option<String>,
}

pub type VoucherTransaction = PaidTransaction;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SocialTransaction {
    #[serde(flatten)]
    pub common: TransactionCommon,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub package_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub social_network: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub social_id: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub social_username: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub social_link: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub social_gender: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub social_age_range: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub social_followers_count: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Voucher {
    #[serde(deserialize_with = "lenient::opt_string")]
    pub serial: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub voucher_code: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub limit_tl: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub limit_dl: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub limit_ul: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub simultaneous_use: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub usage_exp: Option<String>,
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub validity: Option<i64>,
    #[serde(deserialize_with = "lenient::opt_f64")]
    pub price_enduser: Option<f64>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub total_count: Option<i64>,
}

/// `{metadata:{total_count}, items:[...]}`. `items` is required: a body without it is not a list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ListEnvelope<T> {
    #[serde(default)]
    pub metadata: Option<Metadata>,
    pub items: Vec<T>,
}

/// The ids that make a record usable (see [`crate::decode`]).
mod ids {
    use super::*;
    use crate::decode::Record;

    fn text(id: &Option<String>) -> Option<String> {
        id.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    impl Record for Location {
        fn record_id(&self) -> Option<String> {
            text(&self.id)
        }
    }

    impl Record for Customer {
        fn record_id(&self) -> Option<String> {
            text(&self.id)
        }
    }

    impl Record for TransactionCommon {
        fn record_id(&self) -> Option<String> {
            self.id.map(|i| i.to_string())
        }
    }

    impl Record for MacTransaction {
        fn record_id(&self) -> Option<String> {
            self.common.record_id()
        }
    }

    impl Record for PaidTransaction {
        fn record_id(&self) -> Option<String> {
            self.common.record_id()
        }
    }

    impl Record for SocialTransaction {
        fn record_id(&self) -> Option<String> {
            self.common.record_id()
        }
    }

    impl Record for Voucher {
        fn record_id(&self) -> Option<String> {
            text(&self.serial)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn customer_accepts_both_date_forms_and_nulls() {
        let a: Customer = serde_json::from_str(
            r#"{"id":"59243583","user_name":"BE-72-B3-40-F9-BE","name":null,"email":"a@b.c",
                "registered_at":"2013-05-21 17:53:39","social_followers_count":"120","extra":1}"#,
        )
        .unwrap();
        assert_eq!(a.id.as_deref(), Some("59243583"));
        assert_eq!(a.name, None);
        assert_eq!(a.social_followers_count, Some(120));
        assert_eq!(
            a.registered_at,
            Some(Utc.with_ymd_and_hms(2013, 5, 21, 17, 53, 39).unwrap())
        );
        let b: Customer =
            serde_json::from_str(r#"{"id":7,"registered_at":"2013-05-21T17:53:39+02:00"}"#)
                .unwrap();
        assert_eq!(b.id.as_deref(), Some("7"));
        assert_eq!(
            b.registered_at,
            Some(Utc.with_ymd_and_hms(2013, 5, 21, 15, 53, 39).unwrap())
        );
        let garbage = serde_json::from_str::<Customer>(r#"{"registered_at":"yesterday"}"#);
        assert!(garbage.unwrap_err().to_string().contains("yesterday"));
    }

    #[test]
    fn transactions_accept_numbers_as_strings() {
        let t: PaidTransaction = serde_json::from_str(
            r#"{"id":"1001","operator":"op","location_id":4,"action_date_gmt":"2017-03-01T12:34:56.000Z",
                "amount":"12.50","currency":"EUR","newsletter":"1","language":null}"#,
        )
        .unwrap();
        assert_eq!(t.common.id, Some(1001));
        assert_eq!(t.common.location_id.as_deref(), Some("4"));
        assert_eq!(t.amount, Some(12.5));
        assert_eq!(t.common.newsletter, Some(true));
        assert_eq!(
            t.common.action_date_gmt,
            Some(Utc.with_ymd_and_hms(2017, 3, 1, 12, 34, 56).unwrap())
        );
        let m: MacTransaction = serde_json::from_str(
            r#"{"id":5,"location_id":"1","newsletter":0,"package_id":7,"q1":"Age?","a1":"30"}"#,
        )
        .unwrap();
        assert_eq!(m.common.id, Some(5));
        assert_eq!(m.package_id.as_deref(), Some("7"));
        assert_eq!(m.common.newsletter, Some(false));
        let s: SocialTransaction = serde_json::from_str(
            r#"{"id":9,"social_network":"facebook","social_followers_count":3}"#,
        )
        .unwrap();
        assert_eq!(s.social_followers_count, Some(3));
    }

    #[test]
    fn text_fields_sent_as_numbers_read_as_text() {
        let c: Customer = serde_json::from_str(
            r#"{"id":59243583,"user_name":12345,"phone":4915112345678,"zip":94103,"name":null}"#,
        )
        .unwrap();
        assert_eq!(c.id.as_deref(), Some("59243583"));
        assert_eq!(c.user_name.as_deref(), Some("12345"));
        assert_eq!(c.phone.as_deref(), Some("4915112345678"));
        assert_eq!(c.zip.as_deref(), Some("94103"));
        assert_eq!(c.name, None);
    }

    #[test]
    fn voucher_and_envelope() {
        let env: ListEnvelope<Voucher> = serde_json::from_str(
            r#"{"metadata":{"total_count":"2"},"items":[
                {"serial":"S1","voucher_code":"abc-123","limit_tl":-1,"validity":"60","price_enduser":1.5,"currency":"EUR"},
                {"serial":"S2","price_enduser":"3"}]}"#,
        )
        .unwrap();
        assert_eq!(env.metadata.unwrap().total_count, Some(2));
        assert_eq!(env.items[0].limit_tl, Some(-1));
        assert_eq!(env.items[0].validity, Some(60));
        assert_eq!(env.items[1].price_enduser, Some(3.0));
        let missing = serde_json::from_str::<ListEnvelope<Voucher>>(r#"{"metadata":{}}"#);
        assert!(missing.unwrap_err().to_string().contains("items"));
        let owner: Owner =
            serde_json::from_str(r#"{"userId":12345,"operator":"myoperator"}"#).unwrap();
        assert_eq!(owner.user_id.as_deref(), Some("12345"));
    }
}
