//! `--where EXPR`: a minijinja expression compiled once and evaluated per member over only the
//! fields it names, so a million members cost a small map each, not a copy of every row.

use std::collections::BTreeMap;

use anyhow::Result;
use minijinja::{Environment, Value};

use crate::list::Recipient;
use crate::render::member_value;

/// Fields a `--where` expression may use besides the lists' columns.
const BUILTIN: [&str; 1] = ["email"];

/// A compiled `--where` expression.
pub(crate) struct Segment {
    env: Environment<'static>,
    /// The expression as written, for messages and the campaign fingerprint.
    pub expr: String,
    /// The fields it uses, the only ones looked up per member.
    used: Vec<String>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Segment({:?})", self.expr)
    }
}

const EXAMPLES: &str = "e.g. `city == \"Salinas\"`, `\"volunteer\" in tags`, `joined >= \"2024-01-01\"`";

impl Segment {
    /// Compiles `expr` and checks that every field it names is a column of some list
    /// (`fields`). The error names the expression and what to change.
    pub(crate) fn compile(expr: &str, fields: &[String]) -> Result<Segment, String> {
        let mut env = Environment::new();
        let used = {
            let parsed = env.compile_expression(expr).map_err(|e| {
                format!(
                    "--where `{expr}` is not an expression: {}; write a comparison over member fields ({EXAMPLES})",
                    e.detail().unwrap_or("syntax error")
                )
            })?;
            let mut used: Vec<String> = parsed.undeclared_variables(false).into_iter().collect();
            used.sort();
            used
        };
        let unknown: Vec<&str> = used
            .iter()
            .map(String::as_str)
            .filter(|u| !BUILTIN.contains(u) && !fields.iter().any(|f| f == u))
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "--where `{expr}`: no list has a field `{}` (fields: {}); fix the name, or quote a \
                 literal value (`city == \"Salinas\"`, not `city == Salinas`)",
                unknown.join("`, `"),
                fields.join(", ")
            ));
        }
        // The expression parsed alone, so it cannot close the tag around it.
        env.add_template_owned("where", format!("{{% if {expr} %}}1{{% endif %}}"))
            .map_err(|e| format!("--where `{expr}`: {e}"))?;
        Ok(Segment {
            env,
            expr: expr.to_owned(),
            used,
        })
    }

    /// Whether `r` is in the segment. A blank field is undefined: comparisons with it are false.
    pub(crate) fn matches(&self, r: &Recipient) -> Result<bool> {
        let ctx: BTreeMap<&str, Value> = self
            .used
            .iter()
            .filter_map(|f| member_value(r, f).map(|v| (f.as_str(), v)))
            .collect();
        let out = self
            .env
            .get_template("where")
            .and_then(|t| t.render(Value::from(ctx)))
            .map_err(|e| anyhow::anyhow!("{}: --where `{}`: {e}", r.location(), self.expr))?;
        Ok(out == "1")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::list::Sources;

    fn members(csv: &str, expr: &str) -> Result<Vec<String>, String> {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("m.csv");
        std::fs::write(&list, csv).unwrap();
        let sources = Sources::open(&[list], &[]).unwrap();
        let seg = Segment::compile(expr, &sources.fields)?;
        let mut picked = Vec::new();
        for item in sources.stream() {
            if let crate::list::Item::Member(r) = item.unwrap()
                && seg.matches(&r).map_err(|e| e.to_string())?
            {
                picked.push(r.email.key().trim_end_matches("@example.org").to_owned());
            }
        }
        Ok(picked)
    }

    const CSV: &str = "email,city,tags,joined\n\
        a@example.org,Salinas,\"volunteer, donor\",2024-03-01\n\
        b@example.org,Oakland,\"\"\"board\"\",\"\"volunteer\"\"\",2023-01-01\n\
        c@example.org,,,\n";

    #[test]
    fn compares_fields_and_looks_inside_tags() {
        assert_eq!(members(CSV, "city == \"Salinas\"").unwrap(), ["a"]);
        assert_eq!(members(CSV, "\"volunteer\" in tags").unwrap(), ["a", "b"]);
        assert_eq!(members(CSV, "\"board\" in tags").unwrap(), ["b"]);
        assert_eq!(members(CSV, "joined >= \"2024-01-01\"").unwrap(), ["a"]);
        assert_eq!(members(CSV, "not city").unwrap(), ["c"]);
        assert_eq!(
            members(CSV, "\"donor\" not in tags and email != \"a@example.org\"").unwrap(),
            ["b", "c"]
        );
    }

    #[test]
    fn an_unknown_field_or_a_broken_expression_names_the_expression_and_the_fix() {
        let err = members(CSV, "town == \"Salinas\"").unwrap_err();
        assert!(
            err.contains("`town == \"Salinas\"`") && err.contains("no list has a field `town`"),
            "{err}"
        );
        let err = members(CSV, "city == Salinas").unwrap_err();
        assert!(err.contains("quote a literal"), "{err}");
        let err = members(CSV, "city == (").unwrap_err();
        assert!(err.contains("is not an expression"), "{err}");
        let err = members(CSV, "city %} {% if 1").unwrap_err();
        assert!(err.contains("is not an expression"), "{err}");
    }
}
