//! Build parameters: `vars` in sparky.yaml declare them (they become the Run form's
//! fields); requests are checked against them and missing ones take their defaults.
//! Jobs see each parameter as an environment variable of the same name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Params;

/// The kind of form field a parameter is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VarKind {
    #[default]
    Text,
    Textarea,
    Select,
    Checkbox,
}

/// One declared parameter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Var {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: VarKind,
    pub description: Option<String>,
    /// The choices of a `select`.
    pub values: Vec<String>,
    /// Always set: a `select` defaults to its first value, a checkbox to `false`,
    /// text to empty.
    pub default: String,
}

/// A parameter a request got wrong.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("params.{field}: {problem}")]
pub struct ParamError {
    pub field: String,
    pub problem: String,
}

/// A value as requests send it: JSON strings, numbers and booleans are all accepted;
/// anything else is kept so that [`resolve`] can refuse it naming the field.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Text(String),
    Bool(bool),
    Number(serde_json::Number),
    Other(serde_json::Value),
}

impl ParamValue {
    fn into_text(self) -> Result<String, String> {
        match self {
            ParamValue::Text(s) => Ok(s),
            ParamValue::Bool(b) => Ok(b.to_string()),
            ParamValue::Number(n) => Ok(n.to_string()),
            ParamValue::Other(value) => {
                let kind = match value {
                    serde_json::Value::Null => "null",
                    serde_json::Value::Array(_) => "a list",
                    _ => "an object",
                };
                Err(format!("expected a string, number or boolean, got {kind}"))
            }
        }
    }
}

/// Every parameter at its default: what a build that names none (cron, webhooks,
/// polling, downstream builds) runs with.
pub fn defaults(vars: &[Var]) -> Params {
    vars.iter().map(|var| (var.name.clone(), var.default.clone())).collect()
}

/// Checks `given` against `vars` and fills in defaults. Unknown names and values
/// outside a select's choices are refused, naming the field.
pub fn resolve(vars: &[Var], given: BTreeMap<String, ParamValue>) -> Result<Params, ParamError> {
    let mut resolved = Params::new();
    for (name, value) in given {
        let Some(var) = vars.iter().find(|v| v.name == name) else {
            let known: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
            let problem = if known.is_empty() {
                "this project declares no parameters (add `vars:` to sparky.yaml)".to_string()
            } else {
                format!("unknown parameter; this project takes {}", known.join(", "))
            };
            return Err(ParamError { field: name, problem });
        };
        let value = value.into_text().map_err(|problem| ParamError { field: name.clone(), problem })?;
        let value = match var.kind {
            VarKind::Select if !var.values.contains(&value) => {
                return Err(ParamError {
                    field: name,
                    problem: format!("{value:?} is not one of {}", var.values.join(", ")),
                });
            }
            VarKind::Checkbox => match value.as_str() {
                "true" | "on" | "1" | "yes" => "true".to_string(),
                "false" | "off" | "0" | "no" | "" => "false".to_string(),
                _ => {
                    return Err(ParamError {
                        field: name,
                        problem: format!("{value:?} is not a checkbox value (true or false)"),
                    });
                }
            },
            _ => value,
        };
        if value.contains('\0') {
            return Err(ParamError { field: name, problem: "contains a NUL byte".into() });
        }
        resolved.insert(name, value);
    }
    for var in vars {
        resolved.entry(var.name.clone()).or_insert_with(|| var.default.clone());
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<Var> {
        vec![
            Var {
                name: "target".into(),
                kind: VarKind::Select,
                description: None,
                values: vec!["staging".into(), "prod".into()],
                default: "staging".into(),
            },
            Var {
                name: "dry_run".into(),
                kind: VarKind::Checkbox,
                description: None,
                values: vec![],
                default: "false".into(),
            },
        ]
    }

    fn given(pairs: &[(&str, ParamValue)]) -> BTreeMap<String, ParamValue> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn fills_defaults_and_normalises_checkboxes() {
        let params = resolve(&vars(), given(&[("dry_run", ParamValue::Bool(true))])).expect("valid");
        assert_eq!(params.get("target").map(String::as_str), Some("staging"));
        assert_eq!(params.get("dry_run").map(String::as_str), Some("true"));
        let params = resolve(&vars(), given(&[("dry_run", ParamValue::Text("on".into()))])).expect("valid");
        assert_eq!(params.get("dry_run").map(String::as_str), Some("true"));
    }

    #[test]
    fn refuses_unknown_names_and_bad_choices_naming_the_field() {
        let err = resolve(&vars(), given(&[("color", ParamValue::Text("red".into()))])).unwrap_err();
        assert_eq!(err.field, "color");
        assert!(err.to_string().contains("takes target, dry_run"), "{err}");
        let err = resolve(&vars(), given(&[("target", ParamValue::Text("moon".into()))])).unwrap_err();
        assert_eq!(err.to_string(), "params.target: \"moon\" is not one of staging, prod");
        let list: ParamValue = serde_json::from_str("[\"prod\"]").expect("any JSON");
        let err = resolve(&vars(), given(&[("target", list)])).unwrap_err();
        assert_eq!(err.to_string(), "params.target: expected a string, number or boolean, got a list");
    }
}
