//! The configuration file as JSON and back, for the web UI's REST API: `GET /api/config` shows the
//! file's own keys (not the defaults filled in), and `PUT /api/config` turns the edited JSON back into
//! a TOML file that is then read like any other (so a mistake is reported with its key).

use serde_json::{Map, Number, Value};

/// The TOML text as JSON (tables become objects; dates, which the schema never uses, become strings).
pub fn to_json(text: &str) -> Result<Value, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| e.message().to_owned())?;
    Ok(table_to_json(&table))
}

fn table_to_json(table: &toml::Table) -> Value {
    Value::Object(table.iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect())
}

fn value_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::Number((*i).into()),
        toml::Value::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(value_to_json).collect()),
        toml::Value::Table(t) => table_to_json(t),
    }
}

/// JSON (an object) as TOML text. `null` leaves a key out; a key path names what cannot be TOML.
pub fn to_toml(value: &Value) -> Result<String, (String, String)> {
    let Value::Object(map) = value else {
        return Err((
            "(top level)".into(),
            "the configuration must be a JSON object".into(),
        ));
    };
    let table = object_to_table(map, "")?;
    toml::to_string(&table).map_err(|e| ("(top level)".into(), e.to_string()))
}

fn object_to_table(map: &Map<String, Value>, path: &str) -> Result<toml::Table, (String, String)> {
    let mut table = toml::Table::new();
    for (k, v) in map {
        let here = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        if let Some(v) = json_to_value(v, &here)? {
            table.insert(k.clone(), v);
        }
    }
    Ok(table)
}

fn json_to_value(v: &Value, path: &str) -> Result<Option<toml::Value>, (String, String)> {
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => toml::Value::Integer(i),
            (None, Some(f)) => toml::Value::Float(f),
            (None, None) => return Err((path.into(), format!("{n} is out of range"))),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let here = format!("{path}[{i}]");
                out.push(
                    json_to_value(item, &here)?
                        .ok_or_else(|| (here, "null cannot be an element of a list".to_owned()))?,
                );
            }
            toml::Value::Array(out)
        }
        Value::Object(map) => toml::Value::Table(object_to_table(map, path)?),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, DEFAULT_TOML};

    #[test]
    fn the_default_goes_to_json_and_back_to_the_same_configuration() {
        let json = to_json(DEFAULT_TOML).unwrap();
        assert_eq!(json["sip"]["listen"][2]["port"], 5066);
        let text = to_toml(&json).unwrap();
        assert_eq!(
            Config::parse(&text, "back").unwrap(),
            Config::parse(DEFAULT_TOML, "default").unwrap()
        );
    }

    #[test]
    fn nulls_leave_keys_out_and_errors_name_the_key() {
        let json = serde_json::json!({"schema": 2, "sip": {"listen": [{"transport": "udp", "address": "127.0.0.1", "port": 5060}],
            "trunk": null}, "log": {"level": "info"}});
        let text = to_toml(&json).unwrap();
        assert!(!text.contains("trunk"), "{text}");
        Config::parse(&text, "x").unwrap();
        let bad = serde_json::json!({"sip": {"listen": [null]}});
        assert_eq!(to_toml(&bad).unwrap_err().0, "sip.listen[0]");
        assert!(to_toml(&serde_json::json!([1])).is_err());
        // A wrong value is the configuration reader's to report, with its key.
        let wrong =
            serde_json::json!({"sip": {"listen": [{"transport": "udp", "address": "127.0.0.1", "port": 0}]}});
        let e = Config::parse(&to_toml(&wrong).unwrap(), "x").unwrap_err();
        assert_eq!(e.key(), Some("sip.listen[0].port"));
    }
}
