//! Extraction schemas (`jobs/schemas/*.toml`): for one document type, the fields to find,
//! each with a value type, whether it is required and its labels in several languages, and
//! the rules the document as a whole must satisfy. Checked when loaded: a schema that names
//! an unknown field or applies a rule to a field of the wrong type is refused at start-up.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::config::ConfigError;

/// The schemas built into the binary, one file per document type.
const BUILTIN: [(&str, &str); 3] = [
    ("jobs/schemas/invoice.toml", include_str!("../../../../jobs/schemas/invoice.toml")),
    ("jobs/schemas/receipt.toml", include_str!("../../../../jobs/schemas/receipt.toml")),
    ("jobs/schemas/sf424.toml", include_str!("../../../../jobs/schemas/sf424.toml")),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Name of the schema, written into `fields.json`.
    pub name: String,
    /// The document type (`[classify]` label) this schema is for.
    pub doc_type: String,
    /// Other types the schema is also tried on, for types the classifier confuses
    /// (invoices and receipts): the schema that finds more wins.
    #[serde(default)]
    pub also_for: Vec<String>,
    /// Phrases of which one must occur in the document for the schema to apply (none: any
    /// document of the type), so several schemas can share a type (e.g. forms).
    #[serde(default)]
    pub contains: Vec<String>,
    /// Fields with a confidence below this need review.
    #[serde(default = "default_review_below")]
    pub review_below: f32,
    #[serde(rename = "field")]
    pub fields: Vec<FieldSpec>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
    /// The document's line-item table, if it has one.
    #[serde(default)]
    pub items: Option<ItemsSpec>,
}

/// A line-item table: the header texts of its columns, in any language, and the amount
/// fields the items' amounts add up to (the first of them found: subtotal, else total).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemsSpec {
    pub description: Vec<String>,
    #[serde(default)]
    pub quantity: Vec<String>,
    #[serde(default)]
    pub unit_price: Vec<String>,
    pub amount: Vec<String>,
    /// Columns whose words belong to no item field (position, discount, tax rate).
    #[serde(default)]
    pub other: Vec<String>,
    pub sum_to: Vec<String>,
}

fn default_review_below() -> f32 {
    0.5
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    #[serde(default)]
    pub required: bool,
    /// Label texts, in any language; matched case- and accent-insensitively, the longest first.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The allowed values of an `enum` field.
    #[serde(default)]
    pub values: Vec<String>,
    /// Where the value sits relative to its label; default either.
    #[serde(default)]
    pub position: Position,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Text,
    /// One word with a digit in it: an invoice, order or customer number.
    Id,
    Date,
    /// A number with its currency (from a symbol or code next to it, or elsewhere on the page).
    Amount,
    Integer,
    Email,
    Phone,
    Iban,
    VatId,
    Percentage,
    Enum,
    /// The document's currency (ISO 4217), from the currency marks of its amounts.
    Currency,
}

impl FieldSpec {
    /// Its type as the schema writes it ("date", "vat_id"), an enum's with its values.
    pub fn type_name(&self) -> String {
        let name = serde_json::to_value(self.kind).ok().and_then(|v| v.as_str().map(str::to_string));
        let name = name.unwrap_or_default();
        if self.values.is_empty() { name } else { format!("{name}: one of {}", self.values.join(", ")) }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    #[default]
    Any,
    Right,
    Below,
}

/// A check over several fields.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// The amounts `of` add up to `equals` (to the cent).
    Sum { of: Vec<String>, equals: String },
    /// Date `field` is on or after date `than`.
    NotBefore { field: String, than: String },
}

impl Schema {
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    fn check(&self, path: &str) -> Result<(), ConfigError> {
        let bad = |why: String| Err(ConfigError::Invalid(format!("{path}: {why}")));
        let mut names = HashSet::new();
        for f in &self.fields {
            if !names.insert(f.name.as_str()) {
                return bad(format!("field {:?} defined twice", f.name));
            }
            if f.labels.is_empty() && f.kind != Kind::Currency {
                return bad(format!("field {:?} has no labels", f.name));
            }
            if (f.kind == Kind::Enum) == f.values.is_empty() {
                return bad(format!("field {:?}: values are for enum fields, and enum fields need them", f.name));
            }
        }
        let want = |name: &str, kind: Kind| match self.field(name) {
            Some(f) if f.kind == kind => Ok(()),
            Some(f) => bad(format!("rule on {name:?}: a {:?} field, not {kind:?}", f.kind)),
            None => bad(format!("rule on unknown field {name:?}")),
        };
        for rule in &self.rules {
            match rule {
                Rule::Sum { of, equals } => {
                    of.iter().chain([equals]).try_for_each(|name| want(name, Kind::Amount))?;
                }
                Rule::NotBefore { field, than } => {
                    want(field, Kind::Date)?;
                    want(than, Kind::Date)?;
                }
            }
        }
        if let Some(items) = &self.items {
            items.sum_to.iter().try_for_each(|name| want(name, Kind::Amount))?;
            if items.description.is_empty() || items.amount.is_empty() {
                return bad("items need description and amount column labels".into());
            }
        }
        if !(0.0..=1.0).contains(&self.review_below) {
            return bad(format!("review_below {} is not within 0–1", self.review_below));
        }
        Ok(())
    }
}

/// Lower case without accents, for comparing labels and phrases.
pub fn fold(text: &str) -> String {
    text.nfd().filter(|c| !unicode_normalization::char::is_combining_mark(*c)).flat_map(char::to_lowercase).collect()
}

/// Every schema, checked.
#[derive(Debug, Clone)]
pub struct Schemas(Vec<Schema>);

impl Schemas {
    pub fn builtin() -> Result<Self, ConfigError> {
        let mut schemas = Vec::new();
        for (path, text) in BUILTIN {
            let schema: Schema =
                toml::from_str(text).map_err(|e| ConfigError::Invalid(format!("extraction schema {path}: {e}")))?;
            schema.check(path)?;
            schemas.push(schema);
        }
        Ok(Self(schemas))
    }

    /// Whether some schema may apply to documents of `doc_type`.
    pub fn covers(&self, doc_type: &str) -> bool {
        self.0.iter().any(|s| s.doc_type == doc_type || s.also_for.iter().any(|t| t == doc_type))
    }

    /// The schemas that may apply to a document of `doc_type` whose text is `text`: those
    /// of its type first, then those also tried on it.
    pub fn candidates(&self, doc_type: &str, text: &str) -> Vec<&Schema> {
        let text = fold(text);
        let fits = |s: &&Schema| s.contains.is_empty() || s.contains.iter().any(|c| text.contains(&fold(c)));
        let own = self.0.iter().filter(|s| s.doc_type == doc_type);
        let also = self.0.iter().filter(|s| s.also_for.iter().any(|t| t == doc_type));
        own.chain(also).filter(fits).collect()
    }

    pub fn by_name(&self, name: &str) -> Option<&Schema> {
        self.0.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_schemas_are_valid() {
        let schemas = Schemas::builtin().unwrap();
        assert!(schemas.by_name("invoice").unwrap().field("total").unwrap().required);
    }

    #[test]
    fn a_rule_over_a_field_of_the_wrong_type_is_refused() {
        let text = r#"
            name = "x"
            doc_type = "invoice"
            [[field]]
            name = "total"
            type = "text"
            labels = ["Total"]
            [[rule]]
            kind = "sum"
            of = ["total"]
            equals = "total"
        "#;
        let schema: Schema = toml::from_str(text).unwrap();
        let err = schema.check("x.toml").unwrap_err().to_string();
        assert!(err.contains("not Amount"), "{err}");
    }
}
