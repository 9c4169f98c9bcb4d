//! Email templates: every email Levqor sends is rendered from a named template with a subject,
//! a text part and an HTML part (`minijinja`; the HTML part escapes what it is given and may
//! extend `layout.html`). The built-in templates are compiled in; a deployment overrides any
//! part of any of them, or the layout, by name (`<name>.subject`, `<name>.txt`, `<name>.html`),
//! and an override that does not parse, names no template, or does not render with the
//! template's sample data is refused when the templates are built, not when a mail is due.

use crate::error::{Error, Result, Violation};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// One built-in template: its name, the sample context its preview renders with, and its parts.
struct Builtin {
    name: &'static str,
    subject: &'static str,
    text: &'static str,
    html: &'static str,
    sample: fn() -> Value,
}

macro_rules! builtin {
    ($name:literal, $sample:expr) => {
        Builtin {
            name: $name,
            subject: include_str!(concat!("../../templates/", $name, ".subject")),
            text: include_str!(concat!("../../templates/", $name, ".txt")),
            html: include_str!(concat!("../../templates/", $name, ".html")),
            sample: $sample,
        }
    };
}

const LAYOUT: &str = include_str!("../../templates/layout.html");

const BUILTINS: &[Builtin] = &[
    builtin!("job_email", || {
        json!({"subject": "Your report is ready", "body": "Hello Ada,\n\nyour weekly report is attached."})
    }),
    builtin!("terms_changed", || {
        json!({"version": "2026-12", "effective_at": "2026-12-31T00:00:00Z", "effective_date": "2026-12-31",
               "changelog": "- Retention of job outputs is now 30 days."})
    }),
    builtin!("marketing_confirm", || {
        json!({"categories": ["product", "events"],
               "confirm_url": "https://levqor.example/v1/marketing/confirm?token=sample"})
    }),
    builtin!("marketing", || {
        json!({"subject": "What is new in December", "body": "Three new step types.",
               "category": "product",
               "unsubscribe_url": "https://levqor.example/v1/marketing/unsubscribe?token=sample"})
    }),
    builtin!("marketing_unsubscribed", || json!({})),
    builtin!("objection_recorded", || {
        json!({"kind": "automation", "objected": true, "at": "2026-12-06T10:00:00Z"})
    }),
    builtin!(
        "data_export",
        || json!({"areas": ["profile", "jobs", "consents"]})
    ),
    builtin!("appeal_decided", || {
        json!({"job_id": "0193a0c4-0000-7000-8000-000000000000", "approved": false,
               "note": "the workflow still prescribes a medicine"})
    }),
    builtin!("payment_failed", || json!({"day": 3, "grace_days": 14})),
    builtin!("account_suspended", || json!({})),
    builtin!("payment_received", || json!({})),
];

/// The parts of a template.
pub const PARTS: &[&str] = &["subject", "txt", "html"];

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    /// The template's name.
    pub name: String,
    /// The subject line (one line: newlines become spaces).
    pub subject: String,
    /// The text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// The templates, built-in and overridden, compiled once.
pub struct Templates {
    env: Environment<'static>,
    overridden: Vec<String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("overridden", &self.overridden)
            .finish_non_exhaustive()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new(BTreeMap::new()).expect("the built-in templates are valid")
    }
}

impl Templates {
    /// The built-in templates with `overrides` (file name → source: `<name>.<part>` or
    /// `layout.html`). `Invalid` `template_invalid` with one violation per bad override.
    pub fn new(overrides: BTreeMap<String, String>) -> Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        let mut violations = Vec::new();
        let mut sources: BTreeMap<String, String> = BTreeMap::new();
        sources.insert("layout.html".into(), LAYOUT.into());
        for b in BUILTINS {
            sources.insert(format!("{}.subject", b.name), b.subject.into());
            sources.insert(format!("{}.txt", b.name), b.text.into());
            sources.insert(format!("{}.html", b.name), b.html.into());
        }
        let mut overridden = Vec::new();
        for (file, source) in overrides {
            if !sources.contains_key(&file) {
                violations.push(Violation::new(
                    format!("/{file}"),
                    format!(
                        "no template part is named {file:?}; parts are <template>.subject, <template>.txt, <template>.html or layout.html, for the templates {}",
                        names().join(", ")
                    ),
                ));
                continue;
            }
            overridden.push(file.clone());
            sources.insert(file, source);
        }
        for (file, source) in sources {
            if let Err(e) = env.add_template_owned(file.clone(), source) {
                violations.push(Violation::new(format!("/{file}"), e.to_string()));
            }
        }
        let templates = Self { env, overridden };
        if violations.is_empty() {
            // Every template must render its own sample: a typo in a variable name is found
            // now, not when a mail is due.
            for b in BUILTINS {
                for part in PARTS {
                    if let Err(e) = templates.part(b.name, part, &(b.sample)()) {
                        violations.push(Violation::new(format!("/{}.{part}", b.name), e));
                    }
                }
            }
        }
        if !violations.is_empty() {
            return Err(Error::violations(
                "template_invalid",
                format!("{} template part(s) are invalid", violations.len()),
                violations,
            ));
        }
        Ok(templates)
    }

    /// The parts the deployment overrides.
    pub fn overridden(&self) -> &[String] {
        &self.overridden
    }

    fn part(&self, name: &str, part: &str, context: &Value) -> std::result::Result<String, String> {
        self.env
            .get_template(&format!("{name}.{part}"))
            .and_then(|t| t.render(context))
            .map_err(|e| {
                let mut msg = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    source = s.source();
                }
                msg
            })
    }

    /// Renders template `name` with `context`. `NotFound` for an unknown name; `Invalid`
    /// `template_failed` when the context lacks what the template uses.
    pub fn render(&self, name: &str, context: &Value) -> Result<Rendered> {
        if !BUILTINS.iter().any(|b| b.name == name) {
            return Err(Error::not_found("template"));
        }
        let render = |part: &str| {
            self.part(name, part, context).map_err(|e| {
                Error::invalid(
                    "template_failed",
                    format!("template {name}.{part} failed: {e}"),
                )
            })
        };
        Ok(Rendered {
            name: name.to_string(),
            subject: render("subject")?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            // The files end with a newline; the part does not (a job's body stays its own).
            text: {
                let text = render("txt")?;
                text.strip_suffix('\n').map(str::to_string).unwrap_or(text)
            },
            html: render("html")?,
        })
    }

    /// Renders template `name` with its sample data (the admin's preview).
    pub fn preview(&self, name: &str) -> Result<Rendered> {
        let b = BUILTINS
            .iter()
            .find(|b| b.name == name)
            .ok_or_else(|| Error::not_found("template"))?;
        self.render(name, &(b.sample)())
    }
}

/// The names of the templates.
pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|b| b.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_renders_its_sample_with_html_escaped() {
        let t = Templates::default();
        for name in names() {
            let r = t.preview(name).unwrap();
            assert!(!r.subject.is_empty() && !r.subject.contains('\n'), "{name}");
            assert!(!r.text.is_empty(), "{name}");
            assert!(r.html.starts_with("<!doctype html>"), "{name}: {}", r.html);
        }
        let r = t
            .render(
                "job_email",
                &json!({"subject": "Hi <b>", "body": "<script>alert(1)</script>"}),
            )
            .unwrap();
        assert_eq!(r.subject, "Hi <b>", "the subject is text");
        assert_eq!(r.text, "<script>alert(1)</script>", "the text part is text");
        assert!(
            r.html
                .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{}",
            r.html
        );
        assert!(!r.html.contains("<script>"));
    }

    #[test]
    fn overrides_replace_parts_and_bad_ones_are_refused_with_their_names() {
        let t = Templates::new(BTreeMap::from([(
            "payment_received.subject".to_string(),
            "Thanks, {{ 'paid' | upper }}".to_string(),
        )]))
        .unwrap();
        assert_eq!(
            t.preview("payment_received").unwrap().subject,
            "Thanks, PAID"
        );
        assert_eq!(t.overridden(), ["payment_received.subject"]);

        let err = Templates::new(BTreeMap::from([
            ("nope.txt".to_string(), "x".to_string()),
            ("data_export.html".to_string(), "{% if %}".to_string()),
            (
                "payment_failed.txt".to_string(),
                "{{ no_such_variable }}".to_string(),
            ),
        ]))
        .unwrap_err();
        assert_eq!(err.code, "template_invalid");
        let pointers: Vec<&str> = err.violations.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(pointers, ["/nope.txt", "/data_export.html"]);
        let err = Templates::new(BTreeMap::from([(
            "payment_failed.txt".to_string(),
            "{{ no_such_variable }}".to_string(),
        )]))
        .unwrap_err();
        assert_eq!(err.violations[0].pointer, "/payment_failed.txt");
        assert!(
            err.violations[0].message.contains("undefined"),
            "{:?}",
            err.violations
        );
    }

    #[test]
    fn unknown_templates_and_missing_context_are_errors() {
        let t = Templates::default();
        assert_eq!(t.render("nope", &json!({})).unwrap_err().code, "not_found");
        let err = t.render("payment_failed", &json!({"day": 1})).unwrap_err();
        assert_eq!(err.code, "template_failed");
        assert!(
            err.message.contains("payment_failed.txt"),
            "{}",
            err.message
        );
    }
}
