//! SCIM PATCH (RFC 7644 §3.5.2) on the canonical stored form of a User: a JSON object
//! with canonical-case keys, core attributes at the top level and enterprise attributes
//! in an object under [`ENTERPRISE_USER_SCHEMA`].
//!
//! Beyond the RFC, this accepts what Okta and Entra ID really send: ops in any case,
//! string booleans (`"False"`), `Add` on singular attributes, URN-qualified paths,
//! `emails[type eq "work"].value` creating the element when nothing matches, pathless
//! values with dotted and URN keys, and `manager` given as an object or a one-element
//! list. Values of the wrong JSON type for their attribute (a number for `userName`, a
//! string for `name` or `emails`) are `invalidValue`, never converted. Decisions the
//! RFC leaves open are noted where they are made.

use std::fmt;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;

use crate::scim::error::ScimError;
use crate::scim::filter::{self, CompValue, CompareOp, Filter};
use crate::scim::schema::{
    self, AttrRef, AttrType, Attribute, ENTERPRISE_USER, ENTERPRISE_USER_SCHEMA, Mutability,
    USER_SCHEMA,
};

pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Longest PATCH path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

impl OpKind {
    /// `add`, `Add`, `REPLACE`, ...: Entra capitalises ops, Okta does not.
    pub fn parse(op: &str) -> Option<OpKind> {
        let op = op.trim();
        [
            ("add", OpKind::Add),
            ("replace", OpKind::Replace),
            ("remove", OpKind::Remove),
        ]
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(op))
        .map(|(_, kind)| kind)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Add => "add",
            OpKind::Replace => "replace",
            OpKind::Remove => "remove",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed PATCH path: `userName`, `name.givenName` (attr with `sub`),
/// `emails[type eq "work"]` (`filter`), `emails[type eq "work"].value`
/// (`filter` and `sub_after_filter`). The filter's AttrRefs are sub-attributes of `attr`.
#[derive(Debug, Clone)]
pub struct PatchPath {
    pub attr: AttrRef,
    pub filter: Option<Filter>,
    pub sub_after_filter: Option<&'static Attribute>,
}

#[derive(Debug, Clone)]
pub struct PatchOp {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

pub(crate) fn prefixed(prefix: &str, e: ScimError) -> ScimError {
    ScimError {
        detail: format!("{prefix}: {}", e.detail),
        ..e
    }
}

fn path_name(r: &AttrRef) -> String {
    let mut name = String::new();
    if r.is_extension() {
        name.push_str(ENTERPRISE_USER_SCHEMA);
        name.push(':');
    }
    name.push_str(r.attr.name);
    if let Some(sub) = r.sub {
        name.push('.');
        name.push_str(sub.name);
    }
    name
}

/// Parse a PATCH path. Unknown attributes and malformed paths are `invalidPath`; errors
/// inside a `[...]` value filter are `invalidFilter` (RFC 7644 §3.12 lists that for PATCH
/// path filters).
pub fn parse_path(path: &str) -> Result<PatchPath, ScimError> {
    let path = path.trim();
    if path.is_empty() {
        return Err(ScimError::invalid_path("empty path"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(ScimError::invalid_path(format!(
            "path is too long ({} bytes, at most {MAX_PATH_LEN})",
            path.len()
        )));
    }
    let Some(open) = path.find('[') else {
        let attr = schema::resolve(path)
            .ok_or_else(|| ScimError::invalid_path(format!("unknown attribute '{path}'")))?;
        return Ok(PatchPath {
            attr,
            filter: None,
            sub_after_filter: None,
        });
    };
    let head = path.get(..open).unwrap_or("").trim_end();
    let attr = schema::resolve(head)
        .ok_or_else(|| ScimError::invalid_path(format!("unknown attribute '{head}'")))?;
    if attr.sub.is_some() || attr.attr.ty != AttrType::Complex || !attr.attr.multi_valued {
        return Err(ScimError::invalid_path(format!(
            "a '[...]' value filter needs a multi-valued complex attribute; '{}' is not one",
            path_name(&attr)
        )));
    }
    let (filter, rest) = filter::parse_bracket_filter(attr, path.get(open..).unwrap_or(""))?;
    let rest = rest.trim();
    let sub_after_filter = if rest.is_empty() {
        None
    } else if let Some(name) = rest.strip_prefix('.') {
        Some(attr.attr.sub(name).ok_or_else(|| {
            ScimError::invalid_path(format!(
                "unknown sub-attribute '{name}' of '{}'",
                path_name(&attr)
            ))
        })?)
    } else {
        return Err(ScimError::invalid_path(format!(
            "unexpected '{rest}' after ']' in path '{path}'"
        )));
    };
    Ok(PatchPath {
        attr,
        filter: Some(filter),
        sub_after_filter,
    })
}

/// Parse a PatchOp request body. `schemas` may be missing (lenient), but if present it
/// must contain the PatchOp URN (`invalidSyntax`). `Operations` (key in any case) must be
/// a non-empty array. A path that is just a schema URN is turned into the equivalent
/// pathless op (`add`/`replace`) or into removes of each attribute of the extension.
pub fn parse_request(body: &Value) -> Result<Vec<PatchOp>, ScimError> {
    let ops = operations(body)?;
    let mut out = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        parse_op(op, &mut out).map_err(|e| prefixed(&format!("Operations[{i}]"), e))?;
    }
    Ok(out)
}

/// The `Operations` of a PatchOp request body, after checking its envelope: an
/// object whose `schemas` (when sent) names the PatchOp schema, with a non-empty
/// `Operations` array.
pub(crate) fn operations(body: &Value) -> Result<&Vec<Value>, ScimError> {
    let Value::Object(body) = body else {
        return Err(ScimError::invalid_syntax(
            "a PATCH request body must be a JSON object",
        ));
    };
    match get_ci_map(body, "schemas") {
        None | Some(Value::Null) => {}
        Some(schemas) => {
            let names: Vec<&Value> = match schemas {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            if !names.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
            }) {
                return Err(ScimError::invalid_syntax(format!(
                    "'schemas' must be [\"{PATCH_OP_SCHEMA}\"]"
                )));
            }
        }
    }
    let ops = match get_ci_map(body, "Operations") {
        Some(Value::Array(ops)) if !ops.is_empty() => ops,
        Some(Value::Array(_)) => {
            return Err(ScimError::invalid_syntax("'Operations' must not be empty"));
        }
        Some(_) => return Err(ScimError::invalid_syntax("'Operations' must be an array")),
        None => return Err(ScimError::invalid_syntax("missing 'Operations'")),
    };
    Ok(ops)
}

fn parse_op(op: &Value, out: &mut Vec<PatchOp>) -> Result<(), ScimError> {
    let Value::Object(op) = op else {
        return Err(ScimError::invalid_syntax(
            "an operation must be a JSON object",
        ));
    };
    let kind = match get_ci_map(op, "op") {
        Some(Value::String(name)) => OpKind::parse(name).ok_or_else(|| {
            ScimError::invalid_syntax(format!(
                "unknown op '{name}' (expected add, replace or remove)"
            ))
        })?,
        Some(_) => return Err(ScimError::invalid_syntax("'op' must be a string")),
        None => return Err(ScimError::invalid_syntax("missing 'op'")),
    };
    let path = match get_ci_map(op, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => Some(p.trim()),
        Some(_) => return Err(ScimError::invalid_path("'path' must be a string")),
    };
    let value = get_ci_map(op, "value").cloned();
    if kind != OpKind::Remove && value.is_none() {
        return Err(ScimError::invalid_value(format!(
            "'{kind}' needs a 'value'"
        )));
    }
    let Some(path) = path else {
        if kind == OpKind::Remove {
            return Err(ScimError::no_target("'remove' needs a 'path'"));
        }
        if !matches!(value, Some(Value::Object(_))) {
            return Err(ScimError::invalid_value(format!(
                "'{kind}' without a 'path' needs an object of attributes as 'value'"
            )));
        }
        out.push(PatchOp {
            op: kind,
            path: None,
            value,
        });
        return Ok(());
    };
    if let (Some(urn), "") = schema::split_urn(path) {
        return schema_urn_op(kind, urn, value, out);
    }
    out.push(PatchOp {
        op: kind,
        path: Some(parse_path(path)?),
        value,
    });
    Ok(())
}

/// An op whose path is a bare schema URN.
fn schema_urn_op(
    kind: OpKind,
    urn: &'static str,
    value: Option<Value>,
    out: &mut Vec<PatchOp>,
) -> Result<(), ScimError> {
    let is_extension = urn == ENTERPRISE_USER_SCHEMA;
    match kind {
        OpKind::Remove if is_extension => {
            for attr in ENTERPRISE_USER.attributes {
                if attr.mutability == Mutability::ReadOnly {
                    continue;
                }
                out.push(PatchOp {
                    op: OpKind::Remove,
                    path: Some(PatchPath {
                        attr: AttrRef {
                            schema: &ENTERPRISE_USER,
                            attr,
                            sub: None,
                        },
                        filter: None,
                        sub_after_filter: None,
                    }),
                    value: None,
                });
            }
        }
        OpKind::Remove => {
            return Err(ScimError::invalid_path(format!(
                "cannot remove the whole '{urn}' schema"
            )));
        }
        _ if is_extension => {
            let mut wrapped = Map::new();
            wrapped.insert(urn.to_owned(), value.unwrap_or(Value::Null));
            out.push(PatchOp {
                op: kind,
                path: None,
                value: Some(Value::Object(wrapped)),
            });
        }
        _ => {
            if !matches!(value, Some(Value::Object(_))) {
                return Err(ScimError::invalid_value(format!(
                    "the value for path '{USER_SCHEMA}' must be an object of attributes"
                )));
            }
            out.push(PatchOp {
                op: kind,
                path: None,
                value,
            });
        }
    }
    Ok(())
}

/// Apply all ops, in order, to a canonical user. All-or-nothing: on error `resource` is
/// left exactly as it was.
pub fn apply(resource: &mut Value, ops: &[PatchOp]) -> Result<(), ScimError> {
    let mut work = resource.clone();
    if !work.is_object() {
        return Err(ScimError::invalid_value(
            "the resource is not a JSON object",
        ));
    }
    for (i, op) in ops.iter().enumerate() {
        apply_op(&mut work, op).map_err(|e| prefixed(&format!("Operations[{i}]"), e))?;
    }
    *resource = work;
    Ok(())
}

fn apply_op(work: &mut Value, op: &PatchOp) -> Result<(), ScimError> {
    match &op.path {
        None if op.op == OpKind::Remove => Err(ScimError::no_target("'remove' needs a 'path'")),
        None => {
            let value = op
                .value
                .as_ref()
                .ok_or_else(|| ScimError::invalid_value(format!("'{}' needs a 'value'", op.op)))?;
            apply_pathless(work, op.op, value)
        }
        Some(path) => apply_path(work, op.op, path, op.value.as_ref(), false),
    }
}

/// Pathless add/replace: each key is a path (plain, dotted, URN-qualified, filtered), or
/// a schema URN whose value is an object of that schema's attributes. Read-only and
/// write-only attributes (id, meta, groups, password) and `schemas` are skipped, so a
/// whole resource as read back by GET can be sent.
fn apply_pathless(work: &mut Value, kind: OpKind, value: &Value) -> Result<(), ScimError> {
    let Value::Object(attrs) = value else {
        return Err(ScimError::invalid_value(format!(
            "'{kind}' without a 'path' needs an object of attributes as 'value'"
        )));
    };
    for (key, v) in attrs {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        match schema::split_urn(key) {
            (Some(urn), "") => apply_schema_object(work, kind, urn, v)?,
            _ => apply_path(work, kind, &parse_path(key)?, Some(v), true)?,
        }
    }
    Ok(())
}

fn apply_schema_object(
    work: &mut Value,
    kind: OpKind,
    urn: &'static str,
    value: &Value,
) -> Result<(), ScimError> {
    match value {
        Value::Object(attrs) => {
            for (key, v) in attrs {
                if key.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                let path = parse_path(&format!("{urn}:{key}"))?;
                apply_path(work, kind, &path, Some(v), true)?;
            }
            Ok(())
        }
        // `replace` of the extension with null clears it; `add` of nothing adds nothing.
        Value::Null => {
            if kind == OpKind::Replace
                && urn == ENTERPRISE_USER_SCHEMA
                && let Some(root) = work.as_object_mut()
            {
                remove_ci(root, ENTERPRISE_USER_SCHEMA);
            }
            Ok(())
        }
        _ => Err(ScimError::invalid_value(format!(
            "the value of '{urn}' must be an object of attributes"
        ))),
    }
}

fn apply_path(
    work: &mut Value,
    kind: OpKind,
    path: &PatchPath,
    value: Option<&Value>,
    pathless: bool,
) -> Result<(), ScimError> {
    let r = path.attr;
    let leaf = path.sub_after_filter.or(r.sub).unwrap_or(r.attr);
    let name = match path.sub_after_filter {
        Some(sub) => format!("{}.{}", path_name(&r), sub.name),
        None => path_name(&r),
    };
    // writeOnly (password): accepted and ignored, never stored.
    if r.attr.mutability == Mutability::WriteOnly || leaf.mutability == Mutability::WriteOnly {
        return Ok(());
    }
    if r.attr.mutability == Mutability::ReadOnly || leaf.mutability == Mutability::ReadOnly {
        // A whole resource sent back in a pathless op carries id, meta and an empty
        // `groups`: skipped. A pathless op that sets `groups` to something tries to
        // change team membership through the User.
        let sets_groups = r.attr.name == "groups"
            && value.is_some_and(|v| !is_blank(v) && v.as_array().is_none_or(|a| !a.is_empty()));
        if pathless && !sets_groups {
            return Ok(());
        }
        if r.attr.name == "groups" {
            return Err(ScimError::mutability(
                "'groups' is readOnly: change a team's members through /Groups",
            ));
        }
        return Err(ScimError::mutability(format!("'{name}' is readOnly")));
    }
    let value = match kind {
        OpKind::Remove => value,
        _ => Some(
            value.ok_or_else(|| ScimError::invalid_value(format!("'{kind}' needs a 'value'")))?,
        ),
    };

    let map = container(work, &r)?;
    let before = get_ci_map(map, r.attr.name).cloned();
    match (&path.filter, r.sub) {
        (Some(f), _) => apply_filtered(map, r.attr, f, path.sub_after_filter, kind, value)?,
        (None, None) if r.attr.multi_valued => apply_multi(map, r.attr, kind, value)?,
        (None, None) if r.attr.ty == AttrType::Complex => {
            apply_singular_complex(map, r.attr, kind, value)?
        }
        (None, None) => apply_simple(map, r.attr, kind, value)?,
        (None, Some(sub)) if r.attr.multi_valued => apply_multi_sub(map, r.attr, sub, kind, value)?,
        (None, Some(sub)) => apply_complex_sub(map, r.attr, sub, kind, value)?,
    }
    tidy_attr(map, r.attr);
    let after = get_ci_map(map, r.attr.name);
    if r.attr.required && after.is_none() {
        return Err(ScimError::mutability(format!(
            "{} is required and cannot be removed",
            r.attr.name
        )));
    }
    if r.attr.mutability == Mutability::Immutable && before.is_some() && before.as_ref() != after {
        return Err(ScimError::mutability(format!(
            "'{}' is immutable",
            path_name(&r)
        )));
    }
    tidy_extension(work);
    Ok(())
}

// ---------------------------------------------------------------------------
// Target kinds
// ---------------------------------------------------------------------------

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// True when the op clears its target: `remove`, or add/replace of null or "".
fn clears(kind: OpKind, value: Option<&Value>) -> bool {
    kind == OpKind::Remove || value.is_none_or(is_blank)
}

/// Singular simple attribute: userName, active, title, externalId, employeeNumber.
/// `add` on a singular attribute sets it, like `replace`.
fn apply_simple(
    map: &mut Map<String, Value>,
    attr: &'static Attribute,
    kind: OpKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    match value {
        Some(v) if !clears(kind, value) => {
            let v = coerce_singular(attr, v)?;
            if is_blank(&v) {
                remove_ci(map, attr.name);
            } else {
                *entry_ci(map, attr.name) = v;
            }
        }
        _ => remove_ci(map, attr.name),
    }
    Ok(())
}

/// Singular complex attribute: name, manager. add and replace both merge the given
/// sub-attributes (RFC: unspecified sub-attributes are left unchanged).
fn apply_singular_complex(
    map: &mut Map<String, Value>,
    attr: &'static Attribute,
    kind: OpKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let Some(v) = value.filter(|_| !clears(kind, value)) else {
        remove_ci(map, attr.name);
        return Ok(());
    };
    match coerce_singular(attr, v)? {
        Value::Object(new) => {
            merge_complex(object_entry(map, attr.name)?, attr, new);
            Ok(())
        }
        Value::Null => {
            remove_ci(map, attr.name);
            Ok(())
        }
        _ => Err(ScimError::invalid_value(format!(
            "'{}' must be an object",
            attr.name
        ))),
    }
}

/// `name.givenName`, `manager.value`.
fn apply_complex_sub(
    map: &mut Map<String, Value>,
    attr: &'static Attribute,
    sub: &'static Attribute,
    kind: OpKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let coerced = match value {
        Some(v) if !clears(kind, value) => coerce_singular(sub, v)?,
        _ => Value::Null,
    };
    if is_blank(&coerced) {
        if let Some(Value::Object(obj)) = get_mut_ci(map, attr.name) {
            remove_ci(obj, sub.name);
        }
        return Ok(());
    }
    let mut new = Map::new();
    new.insert(sub.name.to_owned(), coerced);
    merge_complex(object_entry(map, attr.name)?, attr, new);
    Ok(())
}

/// Merge sub-attributes into a singular complex value; null or "" removes one. When the
/// identifying `value` changes (manager), its derived `$ref` and `displayName` are dropped
/// unless given too, so they never describe the previous manager.
fn merge_complex(obj: &mut Map<String, Value>, attr: &'static Attribute, new: Map<String, Value>) {
    // A cleared `value` counts as a change too: what is left would describe nobody.
    let identity_changed = attr.sub("value").is_some()
        && new
            .get("value")
            .is_some_and(|v| is_blank(v) || get_ci_map(obj, "value") != Some(v));
    if identity_changed {
        for derived in ["$ref", "displayName", "display"] {
            if !new.contains_key(derived) {
                remove_ci(obj, derived);
            }
        }
    }
    for (key, v) in new {
        if is_blank(&v) {
            remove_ci(obj, &key);
        } else {
            *entry_ci(obj, &key) = v;
        }
    }
}

/// Whole multi-valued attribute: emails, roles, ...
/// add appends the values not already there; replace replaces the whole list; remove
/// removes it, or with a value, only the elements matching the given ones.
fn apply_multi(
    map: &mut Map<String, Value>,
    attr: &'static Attribute,
    kind: OpKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    match kind {
        OpKind::Remove => match value {
            None | Some(Value::Null) => remove_ci(map, attr.name),
            // With a value, only the elements it describes go; a value describing nothing
            // (say only unknown sub-attributes) removes nothing rather than everything.
            Some(v) => {
                let targets = coerce_multi(attr, v)?;
                if let Some(Value::Array(items)) = get_mut_ci(map, attr.name) {
                    items.retain(|item| !targets.iter().any(|t| contains(attr, item, t)));
                }
            }
        },
        OpKind::Replace => {
            let items = match value {
                Some(v) => coerce_multi(attr, v)?,
                None => Vec::new(),
            };
            if items.is_empty() {
                remove_ci(map, attr.name);
            } else {
                *entry_ci(map, attr.name) = Value::Array(items);
            }
        }
        OpKind::Add => {
            let items = match value {
                Some(v) => coerce_multi(attr, v)?,
                None => Vec::new(),
            };
            if items.is_empty() {
                return Ok(());
            }
            let list = array_entry(map, attr.name)?;
            let mut touched = Vec::new();
            for item in items {
                match list
                    .iter()
                    .position(|existing| contains(attr, existing, &item))
                {
                    Some(i) => touched.push(i),
                    None => {
                        list.push(item);
                        touched.push(list.len() - 1);
                    }
                }
            }
            enforce_single_primary(attr, list, &touched);
        }
    }
    Ok(())
}

/// `emails.display` without a filter: applies to every element; add/replace on an empty
/// list creates one element.
fn apply_multi_sub(
    map: &mut Map<String, Value>,
    attr: &'static Attribute,
    sub: &'static Attribute,
    kind: OpKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let coerced = match value {
        Some(v) if !clears(kind, value) => coerce_singular(sub, v)?,
        _ => Value::Null,
    };
    if is_blank(&coerced) {
        if let Some(Value::Array(items)) = get_mut_ci(map, attr.name) {
            for item in items.iter_mut() {
                if let Value::Object(obj) = item {
                    remove_ci(obj, sub.name);
                }
            }
        }
        return Ok(());
    }
    let list = array_entry(map, attr.name)?;
    if list.is_empty() {
        let mut obj = Map::new();
        obj.insert(sub.name.to_owned(), coerced);
        list.push(Value::Object(obj));
    } else {
        for item in list.iter_mut() {
            if let Value::Object(obj) = item {
                *entry_ci(obj, sub.name) = coerced.clone();
            }
        }
    }
    Ok(())
}

/// `emails[type eq "work"]` and `emails[type eq "work"].value`.
fn apply_filtered(
    map: &mut Map<String, Value>,
    attr: &'static Attribute,
    filter: &Filter,
    sub: Option<&'static Attribute>,
    kind: OpKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    if clears(kind, value) {
        // Removing what matches nothing is a no-op (RFC 7644 §3.5.2.2 gives no error).
        let Some(Value::Array(items)) = get_mut_ci(map, attr.name) else {
            return Ok(());
        };
        match sub {
            None => items.retain(|item| !filter::matches_element(filter, item)),
            Some(sub) => {
                for item in items.iter_mut() {
                    if filter::matches_element(filter, item)
                        && let Value::Object(obj) = item
                    {
                        remove_ci(obj, sub.name);
                    }
                }
            }
        }
        return Ok(());
    }
    let Some(value) = value else {
        return Err(ScimError::invalid_value(format!(
            "'{kind}' needs a 'value'"
        )));
    };
    let patch: Map<String, Value> = match sub {
        Some(sub) => {
            let mut m = Map::new();
            m.insert(sub.name.to_owned(), coerce_singular(sub, value)?);
            m
        }
        // The element may come as a list of one (`[{"value": ...}]`): a list of
        // objects is this attribute's own type.
        None => match coerce_singular(attr, one_element(value))? {
            Value::Object(m) => m,
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "the value for a filtered '{}' path must be an object",
                    attr.name
                )));
            }
        },
    };
    let list = array_entry(map, attr.name)?;
    let matched: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, item)| filter::matches_element(filter, item))
        .map(|(i, _)| i)
        .collect();
    if matched.is_empty() {
        // Entra sends `emails[type eq "work"].value` for users with no work email yet
        // and expects the element to be created: a filter of only `eq` terms (joined by
        // `and`) describes the element to create. Anything else has no target.
        let mut created = Map::new();
        if !eq_terms(filter, &mut created) {
            return Err(ScimError::no_target(format!(
                "no '{}' value matches the filter",
                attr.name
            )));
        }
        for (key, v) in patch {
            if is_blank(&v) {
                remove_ci(&mut created, &key);
            } else {
                created.insert(key, v);
            }
        }
        list.push(Value::Object(created));
        let last = list.len() - 1;
        enforce_single_primary(attr, list, &[last]);
    } else {
        for &i in &matched {
            if let Some(Value::Object(obj)) = list.get_mut(i) {
                for (key, v) in &patch {
                    if is_blank(v) {
                        remove_ci(obj, key);
                    } else {
                        *entry_ci(obj, key) = v.clone();
                    }
                }
            }
        }
        enforce_single_primary(attr, list, &matched);
    }
    Ok(())
}

/// `[x]` as `x`; anything else as it is.
fn one_element(v: &Value) -> &Value {
    match v {
        Value::Array(items) if items.len() == 1 => &items[0],
        other => other,
    }
}

/// Collect `sub eq value` terms of a conjunction into the element they describe. False
/// when the filter is anything else, or when it contradicts itself.
fn eq_terms(filter: &Filter, out: &mut Map<String, Value>) -> bool {
    match filter {
        Filter::Compare {
            attr,
            op: CompareOp::Eq,
            value,
        } => {
            let (Some(sub), Some(v)) = (attr.sub, comp_to_json(value)) else {
                return false;
            };
            if sub.mutability == Mutability::ReadOnly {
                return false;
            }
            match out.get(sub.name) {
                Some(existing) => existing == &v,
                None => {
                    out.insert(sub.name.to_owned(), v);
                    true
                }
            }
        }
        Filter::And(a, b) => eq_terms(a, out) && eq_terms(b, out),
        _ => false,
    }
}

fn comp_to_json(value: &CompValue) -> Option<Value> {
    match value {
        CompValue::Str(s) if !s.is_empty() => Some(Value::String(s.clone())),
        CompValue::Num(n) => Some(Value::Number(n.clone())),
        CompValue::Bool(b) => Some(Value::Bool(*b)),
        CompValue::DateTime(dt) => dt.format(&Rfc3339).ok().map(Value::String),
        CompValue::Str(_) | CompValue::Null => None,
    }
}

/// Setting `primary: true` on some elements clears it on every other element (RFC 7643
/// §2.4: primary true appears at most once).
fn enforce_single_primary(attr: &'static Attribute, list: &mut [Value], touched: &[usize]) {
    if attr.sub("primary").is_none() {
        return;
    }
    let is_primary = |v: &Value| {
        filter::get_ci(v, "primary").is_some_and(|p| match p {
            Value::Bool(b) => *b,
            Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
            _ => false,
        })
    };
    if !touched.iter().any(|&i| list.get(i).is_some_and(is_primary)) {
        return;
    }
    for (i, item) in list.iter_mut().enumerate() {
        if touched.contains(&i) {
            continue;
        }
        if let Value::Object(obj) = item
            && let Some(primary) = get_mut_ci(obj, "primary")
        {
            *primary = Value::Bool(false);
        }
    }
}

/// Whether `existing` already holds everything in `new` (so adding `new` is a
/// duplicate). Strings compare case-insensitively unless the sub-attribute is caseExact.
fn contains(attr: &'static Attribute, existing: &Value, new: &Value) -> bool {
    match (existing, new) {
        (Value::Object(have), Value::Object(want)) => want.iter().all(|(key, w)| {
            let exact = attr.sub(key).is_none_or(|s| s.case_exact);
            get_ci_map(have, key).is_some_and(|h| same_value(h, w, exact))
        }),
        _ => same_value(existing, new, attr.case_exact),
    }
}

fn same_value(a: &Value, b: &Value, case_exact: bool) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) if !case_exact => x.to_lowercase() == y.to_lowercase(),
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------
// Value coercion
// ---------------------------------------------------------------------------

fn shape_error(attr: &Attribute, want: &str, got: &Value) -> ScimError {
    ScimError::invalid_value(format!(
        "'{}' must be {want}, got {}",
        attr.name,
        schema::json_kind(got)
    ))
}

/// The canonical JSON for one value of `attr` (its multi-valuedness ignored). Null stays
/// null (meaning "remove"). String booleans become booleans; any other value of the
/// wrong JSON type is `invalidValue` (see [`schema::type_mismatch`]). Unknown and
/// readOnly sub-attributes of complex values are dropped.
fn coerce_single(attr: &'static Attribute, v: &Value) -> Result<Value, ScimError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    if let Some(want) = schema::type_mismatch(attr, v) {
        return Err(shape_error(attr, want, v));
    }
    match (attr.ty, v) {
        (AttrType::Boolean, Value::String(s)) => {
            Ok(Value::Bool(schema::parse_bool(s).unwrap_or_default()))
        }
        (AttrType::DateTime, Value::String(s))
            if time::OffsetDateTime::parse(s, &Rfc3339).is_err() =>
        {
            Err(shape_error(attr, "an RFC 3339 date-time string", v))
        }
        (AttrType::Complex, Value::Object(given)) => {
            let mut out = Map::new();
            for (key, x) in given {
                let Some(sub) = attr.sub(key) else { continue };
                if matches!(sub.mutability, Mutability::ReadOnly | Mutability::WriteOnly) {
                    continue;
                }
                out.insert(sub.name.to_owned(), coerce_singular(sub, x)?);
            }
            Ok(Value::Object(out))
        }
        _ => Ok(v.clone()),
    }
}

/// A value for a singular target. Only `manager` may come as a list (Entra sends
/// `[{"value": ...}]`): a list of one is unwrapped, an empty list means null.
fn coerce_singular(attr: &'static Attribute, v: &Value) -> Result<Value, ScimError> {
    match v {
        Value::Array(items) if schema::takes_list(attr) => match items.as_slice() {
            [] => Ok(Value::Null),
            [one] => coerce_single(attr, one),
            _ => Err(ScimError::invalid_value(format!(
                "'{}' is single-valued; got a list of {}",
                attr.name,
                items.len()
            ))),
        },
        _ => coerce_single(attr, v),
    }
}

/// The elements of a multi-valued value (a list, or one object), coerced; empty
/// elements and empty sub-attributes dropped. A scalar, or a list of scalars, for a
/// complex attribute is `invalidValue`.
fn coerce_multi(attr: &'static Attribute, v: &Value) -> Result<Vec<Value>, ScimError> {
    let given: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) if attr.ty == AttrType::Complex => vec![v],
        other if is_blank(other) => Vec::new(),
        other => return Err(shape_error(attr, "a list", other)),
    };
    let mut out = Vec::with_capacity(given.len());
    for item in given {
        let mut c = if is_blank(item) {
            Value::Null
        } else {
            coerce_single(attr, item)?
        };
        if let Value::Object(obj) = &mut c {
            obj.retain(|_, x| !is_blank(x));
        }
        if !is_empty(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        other => is_blank(other),
    }
}

// ---------------------------------------------------------------------------
// JSON helpers (keys matched ASCII case-insensitively, written in canonical case)
// ---------------------------------------------------------------------------

pub(crate) fn get_ci_map<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The member `name`, renaming any other-case spelling to `name` (and dropping further
/// duplicates); inserted as null when absent.
fn entry_ci<'m>(map: &'m mut Map<String, Value>, name: &str) -> &'m mut Value {
    let others: Vec<String> = map
        .keys()
        .filter(|k| k.as_str() != name && k.eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    for key in others {
        if let Some(v) = map.remove(&key)
            && !map.contains_key(name)
        {
            map.insert(name.to_owned(), v);
        }
    }
    map.entry(name).or_insert(Value::Null)
}

fn get_mut_ci<'m>(map: &'m mut Map<String, Value>, name: &str) -> Option<&'m mut Value> {
    if map.keys().any(|k| k.eq_ignore_ascii_case(name)) {
        Some(entry_ci(map, name))
    } else {
        None
    }
}

fn remove_ci(map: &mut Map<String, Value>, name: &str) {
    map.retain(|k, _| !k.eq_ignore_ascii_case(name));
}

fn object_entry<'m>(
    map: &'m mut Map<String, Value>,
    name: &str,
) -> Result<&'m mut Map<String, Value>, ScimError> {
    let slot = entry_ci(map, name);
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
        .ok_or_else(|| ScimError::invalid_value(format!("'{name}' must be an object")))
}

fn array_entry<'m>(
    map: &'m mut Map<String, Value>,
    name: &str,
) -> Result<&'m mut Vec<Value>, ScimError> {
    let slot = entry_ci(map, name);
    match slot {
        Value::Array(_) => {}
        Value::Null => *slot = Value::Array(Vec::new()),
        _ => {
            let old = slot.take();
            *slot = Value::Array(vec![old]);
        }
    }
    slot.as_array_mut()
        .ok_or_else(|| ScimError::invalid_value(format!("'{name}' must be a list")))
}

/// The object an attribute lives in: the resource, or its enterprise extension object.
fn container<'w>(
    work: &'w mut Value,
    r: &AttrRef,
) -> Result<&'w mut Map<String, Value>, ScimError> {
    let root = work
        .as_object_mut()
        .ok_or_else(|| ScimError::invalid_value("the resource is not a JSON object"))?;
    if !r.is_extension() {
        return Ok(root);
    }
    object_entry(root, ENTERPRISE_USER_SCHEMA)
}

/// Drop what an op emptied: null/"" sub-attributes, empty elements, and the attribute
/// itself when nothing is left.
fn tidy_attr(map: &mut Map<String, Value>, attr: &'static Attribute) {
    let Some(v) = get_mut_ci(map, attr.name) else {
        return;
    };
    match v {
        Value::Object(obj) => obj.retain(|_, x| !is_blank(x)),
        Value::Array(items) => {
            for item in items.iter_mut() {
                if let Value::Object(obj) = item {
                    obj.retain(|_, x| !is_blank(x));
                }
            }
            items.retain(|item| !is_empty(item));
        }
        _ => {}
    }
    if is_empty(v) {
        remove_ci(map, attr.name);
    }
}

fn tidy_extension(work: &mut Value) {
    if let Some(root) = work.as_object_mut()
        && get_ci_map(root, ENTERPRISE_USER_SCHEMA).is_some_and(is_empty)
    {
        remove_ci(root, ENTERPRISE_USER_SCHEMA);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::error::ScimType;
    use proptest::prelude::*;
    use serde_json::json;

    const ENT: &str = ENTERPRISE_USER_SCHEMA;

    fn user() -> Value {
        json!({
            "userName": "bjensen@example.com",
            "externalId": "ext-1",
            "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Barbara Jensen"},
            "displayName": "Babs",
            "title": "Tour Guide",
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@home.example", "type": "home", "primary": false}
            ],
            "roles": [{"value": "contributor", "type": "role", "primary": true}],
            ENT: {
                "employeeNumber": "701984",
                "department": "Tour Operations",
                "manager": {"value": "mgr-0", "displayName": "Old Boss"}
            }
        })
    }

    fn body(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
    }

    /// Parse and apply a literal request body to `start`; on error, check that `start`
    /// was left untouched.
    fn run(start: &Value, body: &Value) -> Result<Value, ScimError> {
        let ops = parse_request(body)?;
        let mut resource = start.clone();
        match apply(&mut resource, &ops) {
            Ok(()) => Ok(resource),
            Err(e) => {
                assert_eq!(
                    &resource, start,
                    "a failed PATCH must not change the resource"
                );
                Err(e)
            }
        }
    }

    fn ok(start: &Value, op: Value) -> Value {
        run(start, &body(json!([op.clone()]))).unwrap_or_else(|e| panic!("{op}: {e:?}"))
    }

    fn fails(start: &Value, op: Value, scim_type: ScimType) -> ScimError {
        match run(start, &body(json!([op.clone()]))) {
            Ok(v) => panic!("{op} should fail, got {v}"),
            Err(e) => {
                assert_eq!(e.status, 400, "{op}");
                assert_eq!(e.scim_type, Some(scim_type), "{op}: {}", e.detail);
                e
            }
        }
    }

    // ----- Wrong JSON types -----

    #[test]
    fn values_of_the_wrong_type_are_refused_not_converted() {
        for op in [
            json!({"op": "replace", "path": "userName", "value": 123}),
            json!({"op": "Replace", "path": "USERNAME", "value": true}),
            json!({"op": "replace", "path": "userName", "value": ["a@b.c"]}),
            json!({"op": "replace", "path": "externalId", "value": 42}),
            json!({"op": "replace", "path": "title", "value": {"a": 1}}),
            json!({"op": "replace", "path": "name", "value": ["Ada"]}),
            json!({"op": "replace", "path": "name", "value": "Ada"}),
            json!({"op": "replace", "path": "name.givenName", "value": 5}),
            json!({"op": "add", "path": "emails", "value": "a@b.c"}),
            json!({"op": "add", "path": "emails", "value": ["a@b.c"]}),
            json!({"op": "add", "path": "roles", "value": "admin"}),
            json!({"op": "replace", "path": "emails[type eq \"work\"].value", "value": 5}),
            json!({"op": "replace", "path": "active", "value": 0}),
            json!({"op": "replace", "path": format!("{ENT}:employeeNumber"), "value": 701984}),
            json!({"op": "replace", "path": format!("{ENT}:manager"), "value": "mgr-1"}),
            json!({"op": "replace", "path": format!("{ENT}:manager"), "value": ["mgr-1"]}),
            json!({"op": "replace", "value": {"userName": 123}}),
            json!({"op": "replace", "value": {"name.familyName": 5}}),
            json!({"op": "replace", "value": {ENT: {"department": 5}}}),
        ] {
            let e = fails(&user(), op.clone(), ScimType::InvalidValue);
            assert!(e.detail.contains("must be"), "{op}: {}", e.detail);
        }
    }

    // ----- Okta -----

    #[test]
    fn okta_deactivate_and_reactivate() {
        let off = run(
            &user(),
            &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}),
        )
        .unwrap();
        let mut expected = user();
        expected["active"] = json!(false);
        assert_eq!(off, expected);
        let on = run(
            &off,
            &json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":true}}]}),
        )
        .unwrap();
        assert_eq!(on, user());
    }

    // ----- Entra -----

    #[test]
    fn entra_active_string_booleans() {
        for (op, value, expected) in [
            ("Replace", "False", false),
            ("Replace", "false", false),
            ("Replace", "True", true),
            ("Add", "False", false),
            ("add", "TRUE", true),
        ] {
            let mut start = user();
            start["active"] = json!(!expected);
            let out = ok(&start, json!({"op": op, "path": "active", "value": value}));
            assert_eq!(out["active"], json!(expected), "{op} {value}");
        }
        let out = ok(
            &user(),
            json!({"op": "Replace", "path": "active", "value": false}),
        );
        assert_eq!(out["active"], json!(false));
    }

    #[test]
    fn ops_in_any_case() {
        for op in ["add", "Add", "ADD", "replace", "Replace", "rEpLaCe"] {
            let out = ok(&user(), json!({"op": op, "path": "title", "value": "Boss"}));
            assert_eq!(out["title"], "Boss", "{op}");
        }
        for op in ["remove", "Remove", "REMOVE"] {
            let out = ok(&user(), json!({"op": op, "path": "title"}));
            assert!(out.get("title").is_none(), "{op}");
        }
        let e = fails(
            &user(),
            json!({"op": "move", "path": "title", "value": "x"}),
            ScimType::InvalidSyntax,
        );
        assert!(e.detail.contains("unknown op 'move'"), "{}", e.detail);
        fails(
            &user(),
            json!({"path": "title", "value": "x"}),
            ScimType::InvalidSyntax,
        );
        fails(
            &user(),
            json!({"op": 1, "value": {}}),
            ScimType::InvalidSyntax,
        );
    }

    #[test]
    fn entra_filtered_email_value_updates_the_element() {
        let out = ok(
            &user(),
            json!({"op":"Replace","path":"emails[type eq \"work\"].value","value":"new@x.com"}),
        );
        assert_eq!(
            out["emails"],
            json!([
                {"value": "new@x.com", "type": "work", "primary": true},
                {"value": "babs@home.example", "type": "home", "primary": false}
            ])
        );
        // Never a literal key (mistake #4).
        assert!(out.as_object().unwrap().keys().all(|k| !k.contains('[')));
        let mut expected = user();
        expected["emails"][0]["value"] = json!("new@x.com");
        assert_eq!(out, expected);
    }

    #[test]
    fn entra_filtered_email_value_creates_missing_element() {
        let mut start = user();
        start.as_object_mut().unwrap().remove("emails");
        let out = ok(
            &start,
            json!({"op":"Replace","path":"emails[type eq \"work\"].value","value":"new@x.com"}),
        );
        assert_eq!(
            out["emails"],
            json!([{"type": "work", "value": "new@x.com"}])
        );

        // Only a home email: the work one is appended.
        let mut start = user();
        start["emails"] = json!([{"value": "h@x", "type": "home"}]);
        let out = ok(
            &start,
            json!({"op":"Add","path":"emails[type eq \"work\"].value","value":"w@x"}),
        );
        assert_eq!(
            out["emails"],
            json!([{"value": "h@x", "type": "home"}, {"type": "work", "value": "w@x"}])
        );

        // An `and` of eq terms describes the element, primary included.
        let out = ok(
            &user(),
            json!({"op":"replace","path":"emails[type eq \"other\" and primary eq \"True\"].value","value":"o@x"}),
        );
        assert_eq!(
            out["emails"],
            json!([
                {"value": "bjensen@example.com", "type": "work", "primary": false},
                {"value": "babs@home.example", "type": "home", "primary": false},
                {"type": "other", "primary": true, "value": "o@x"}
            ])
        );
    }

    #[test]
    fn filter_matching_nothing_is_no_target_unless_constructible() {
        for path in [
            r#"emails[value co "nomatch"].type"#,
            r#"emails[type eq "other" or type eq "x"].value"#,
            r#"emails[not (type pr)].value"#,
            r#"emails[type ne "work" and type ne "home"].value"#,
            r#"emails[type eq "a" and type eq "b"].value"#,
        ] {
            let e = fails(
                &user(),
                json!({"op": "replace", "path": path, "value": "v"}),
                ScimType::NoTarget,
            );
            assert!(
                e.detail.contains("no 'emails' value matches"),
                "{}",
                e.detail
            );
        }
        fails(
            &user(),
            json!({"op": "add", "path": r#"emails[value sw "zzz"]"#, "value": {"type": "x"}}),
            ScimType::NoTarget,
        );
    }

    #[test]
    fn entra_name_family_name_keeps_other_parts() {
        let out = ok(
            &user(),
            json!({"op":"Replace","path":"name.familyName","value":"X"}),
        );
        assert_eq!(
            out["name"],
            json!({"givenName": "Barbara", "familyName": "X", "formatted": "Barbara Jensen"})
        );
    }

    #[test]
    fn entra_user_name_replace() {
        let out = ok(
            &user(),
            json!({"op":"Replace","path":"userName","value":"new@x.com"}),
        );
        assert_eq!(out["userName"], "new@x.com");
        // Attribute names in other cases land on the canonical key.
        let out = ok(
            &user(),
            json!({"op":"Replace","path":"UserName","value":"other@x.com"}),
        );
        assert_eq!(out["userName"], "other@x.com");
        assert!(out.get("UserName").is_none());
    }

    #[test]
    fn entra_primary_role_value() {
        let op = json!({"op":"Replace","path":"roles[primary eq \"True\"].value","value":"admin"});
        let out = ok(&user(), op.clone());
        assert_eq!(
            out["roles"],
            json!([{"value": "admin", "type": "role", "primary": true}])
        );
        // No roles yet: the primary entry is created.
        let mut start = user();
        start.as_object_mut().unwrap().remove("roles");
        let out = ok(&start, op.clone());
        assert_eq!(out["roles"], json!([{"primary": true, "value": "admin"}]));
        // A non-primary role stays, the new entry becomes the primary one.
        let mut start = user();
        start["roles"] = json!([{"value": "viewer", "type": "role", "primary": false}]);
        let out = ok(&start, op);
        assert_eq!(
            out["roles"],
            json!([
                {"value": "viewer", "type": "role", "primary": false},
                {"primary": true, "value": "admin"}
            ])
        );
        // The caller's normalization fills the role type.
        let normalized = crate::scim::resource::normalize_user(&out).unwrap();
        assert_eq!(
            normalized["roles"][1],
            json!({"primary": true, "value": "admin", "type": "role"})
        );
    }

    #[test]
    fn entra_enterprise_employee_number() {
        let mut start = user();
        start.as_object_mut().unwrap().remove(ENT);
        let out = ok(
            &start,
            json!({"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"42"}),
        );
        assert_eq!(out[ENT], json!({"employeeNumber": "42"}));
        let out = ok(
            &user(),
            json!({"op":"Replace","path":"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:EMPLOYEENUMBER","value":"42"}),
        );
        assert_eq!(out[ENT]["employeeNumber"], "42");
        assert_eq!(out[ENT]["department"], "Tour Operations");
        // A number is not read as its text: the attribute is a string.
        fails(
            &user(),
            json!({"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":42}),
            ScimType::InvalidValue,
        );
    }

    #[test]
    fn entra_manager_shapes() {
        let path = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager";
        for op in ["Add", "Replace"] {
            for value in [json!({"value": "mgr-id"}), json!([{"value": "mgr-id"}])] {
                let out = ok(
                    &user(),
                    json!({"op": op, "path": path, "value": value.clone()}),
                );
                // The old manager's displayName does not stick to the new manager.
                assert_eq!(
                    out[ENT]["manager"],
                    json!({"value": "mgr-id"}),
                    "{op} {value}"
                );
                assert_eq!(out[ENT]["department"], "Tour Operations");

                let mut start = user();
                start.as_object_mut().unwrap().remove(ENT);
                let out = ok(
                    &start,
                    json!({"op": op, "path": path, "value": value.clone()}),
                );
                assert_eq!(
                    out[ENT],
                    json!({"manager": {"value": "mgr-id"}}),
                    "{op} {value}"
                );
            }
        }
        let out = ok(
            &user(),
            json!({"op": "Replace", "path": format!("{path}.value"), "value": "m2"}),
        );
        assert_eq!(out[ENT]["manager"], json!({"value": "m2"}));
        // Same manager again keeps what is known about it.
        let out = ok(
            &user(),
            json!({"op": "Replace", "path": path, "value": {"value": "mgr-0"}}),
        );
        assert_eq!(
            out[ENT]["manager"],
            json!({"value": "mgr-0", "displayName": "Old Boss"})
        );
    }

    #[test]
    fn entra_manager_remove() {
        let out = ok(
            &user(),
            json!({"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}),
        );
        assert_eq!(
            out[ENT],
            json!({"employeeNumber": "701984", "department": "Tour Operations"})
        );
        // With a value naming the manager, and a manager cleared by an empty value.
        let out2 = ok(
            &user(),
            json!({"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":[{"value":"mgr-0"}]}),
        );
        assert_eq!(out2, out);
        let out3 = ok(
            &user(),
            json!({"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":""}}),
        );
        assert_eq!(out3, out);
        // Removing the last enterprise attribute removes the extension object.
        let mut start = user();
        start[ENT] = json!({"manager": {"value": "m"}});
        let out = ok(
            &start,
            json!({"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}),
        );
        assert!(out.get(ENT).is_none(), "{out}");
    }

    #[test]
    fn entra_add_roles_urn_path() {
        let out = ok(
            &user(),
            json!({"op":"Add","path":"urn:ietf:params:scim:schemas:core:2.0:User:roles","value":[{"value":"maker","primary":"True"}]}),
        );
        assert_eq!(
            out["roles"],
            json!([
                {"value": "contributor", "type": "role", "primary": false},
                {"value": "maker", "primary": true}
            ])
        );
        let normalized = crate::scim::resource::normalize_user(&out).unwrap();
        assert_eq!(normalized["roles"][1]["primary"], json!(true));
        assert_eq!(normalized["roles"][0]["primary"], json!(false));
    }

    #[test]
    fn entra_pathless_dotted_and_urn_keys() {
        let out = ok(
            &user(),
            json!({"op":"replace","value":{"name.givenName":"A","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"X","userName":"u@x"}}),
        );
        let mut expected = user();
        expected["name"]["givenName"] = json!("A");
        expected[ENT]["department"] = json!("X");
        expected["userName"] = json!("u@x");
        assert_eq!(out, expected);
    }

    #[test]
    fn pathless_partial_name_merges() {
        let out = ok(
            &user(),
            json!({"op": "replace", "value": {"name": {"givenName": "A"}}}),
        );
        assert_eq!(
            out["name"],
            json!({"givenName": "A", "familyName": "Jensen", "formatted": "Barbara Jensen"})
        );
        let out = ok(
            &user(),
            json!({"op": "Add", "value": {"NAME": {"GIVENNAME": "B"}}}),
        );
        assert_eq!(out["name"]["givenName"], "B");
        assert_eq!(out["name"]["familyName"], "Jensen");
    }

    #[test]
    fn pathless_enterprise_object_merges() {
        let out = ok(
            &user(),
            json!({"op": "replace", "value": {ENT: {"department": "X", "costCenter": "CC"}}}),
        );
        let mut expected = user();
        expected[ENT]["department"] = json!("X");
        expected[ENT]["costCenter"] = json!("CC");
        assert_eq!(out, expected);
        // The same with the extension URN as the path.
        let out2 = ok(
            &user(),
            json!({"op": "replace", "path": ENT, "value": {"department": "X", "costCenter": "CC"}}),
        );
        assert_eq!(out2, expected);
        // Removing the extension URN removes every enterprise attribute.
        let out3 = ok(&user(), json!({"op": "remove", "path": ENT}));
        assert!(out3.get(ENT).is_none());
        assert_eq!(out3["userName"], "bjensen@example.com");
    }

    #[test]
    fn pathless_ignores_read_only_and_password() {
        let out = ok(
            &user(),
            json!({"op": "replace", "value": {
                "schemas": [schema::USER_SCHEMA],
                "id": "hijack",
                "meta": {"created": "2020-01-01T00:00:00Z"},
                "groups": [],
                "password": "secret",
                "externalId": "ext-2",
                ENT: {"manager": {"value": "m", "displayName": "ignored"}}
            }}),
        );
        let mut expected = user();
        expected["externalId"] = json!("ext-2");
        expected[ENT]["manager"] = json!({"value": "m"});
        assert_eq!(out, expected);
        // Setting groups is changing team membership through the User: refused.
        let ops = parse_request(&json!({"Operations": [
            {"op": "add", "value": {"groups": [{"value": "g"}]}}
        ]}))
        .unwrap();
        let refused = apply(&mut user(), &ops).unwrap_err();
        assert_eq!(refused.scim_type, Some(ScimType::Mutability), "{refused:?}");
    }

    #[test]
    fn pathless_filtered_and_core_urn_keys() {
        let out = ok(
            &user(),
            json!({"op": "Replace", "value": {"emails[type eq \"work\"].value": "w@x"}}),
        );
        assert_eq!(out["emails"][0]["value"], "w@x");
        assert_eq!(out["emails"][1]["value"], "babs@home.example");
        let out = ok(
            &user(),
            json!({"op": "replace", "value": {
                "urn:ietf:params:scim:schemas:core:2.0:User": {"displayName": "B", "name.familyName": "J"},
                "urn:ietf:params:scim:schemas:core:2.0:User:title": "T"
            }}),
        );
        assert_eq!(out["displayName"], "B");
        assert_eq!(out["name"]["familyName"], "J");
        assert_eq!(out["name"]["givenName"], "Barbara");
        assert_eq!(out["title"], "T");
        let out = ok(&user(), json!({"op": "replace", "value": {ENT: null}}));
        assert!(out.get(ENT).is_none());
    }

    // ----- remove -----

    #[test]
    fn remove_by_value_filter() {
        let out = ok(
            &user(),
            json!({"op":"remove","path":"emails[type eq \"home\"]"}),
        );
        assert_eq!(
            out["emails"],
            json!([{"value": "bjensen@example.com", "type": "work", "primary": true}])
        );
        let out = ok(
            &user(),
            json!({"op":"remove","path":"emails[type eq \"home\" or type eq \"WORK\"]"}),
        );
        assert!(out.get("emails").is_none(), "empty list removed: {out}");
    }

    #[test]
    fn remove_sub_attribute_of_matching_elements() {
        let mut start = user();
        start["emails"][0]["display"] = json!("Work mail");
        start["emails"][1]["display"] = json!("Home mail");
        let out = ok(
            &start,
            json!({"op":"remove","path":"emails[type eq \"work\"].display"}),
        );
        assert!(out["emails"][0].get("display").is_none());
        assert_eq!(out["emails"][1]["display"], "Home mail");
        assert_eq!(out["emails"][0]["value"], "bjensen@example.com");
    }

    #[test]
    fn remove_matching_nothing_is_a_no_op() {
        for path in [
            r#"emails[type eq "other"]"#,
            r#"emails[type eq "other"].value"#,
            r#"phoneNumbers[type eq "work"]"#,
            "nickName",
            "name.middleName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter",
        ] {
            assert_eq!(
                ok(&user(), json!({"op": "remove", "path": path})),
                user(),
                "{path}"
            );
        }
    }

    #[test]
    fn remove_whole_attributes() {
        let out = ok(&user(), json!({"op": "remove", "path": "title"}));
        let mut expected = user();
        expected.as_object_mut().unwrap().remove("title");
        assert_eq!(out, expected);
        let out = ok(&user(), json!({"op": "remove", "path": "name"}));
        assert!(out.get("name").is_none());
        let out = ok(&user(), json!({"op": "remove", "path": "emails"}));
        assert!(out.get("emails").is_none());
        // name.givenName alone; the rest of name stays.
        let out = ok(&user(), json!({"op": "remove", "path": "name.givenName"}));
        assert_eq!(
            out["name"],
            json!({"familyName": "Jensen", "formatted": "Barbara Jensen"})
        );
        // Remove with a value: only the given elements.
        let out = ok(
            &user(),
            json!({"op": "remove", "path": "emails", "value": [{"value": "BABS@home.example"}]}),
        );
        assert_eq!(
            out["emails"],
            json!([{"value": "bjensen@example.com", "type": "work", "primary": true}])
        );
        // A value that describes no element removes nothing.
        for value in [
            json!([{"bogus": 1}]),
            json!([]),
            json!({"value": "nobody@x"}),
        ] {
            let out = ok(
                &user(),
                json!({"op": "remove", "path": "emails", "value": value}),
            );
            assert_eq!(out, user());
        }
    }

    // ----- add / replace semantics -----

    #[test]
    fn add_to_multi_valued_appends_without_duplicates() {
        let out = ok(
            &user(),
            json!({"op": "add", "path": "emails", "value": [
                {"value": "BJENSEN@example.com", "type": "work"},
                {"value": "third@x", "type": "other"}
            ]}),
        );
        assert_eq!(
            out["emails"],
            json!([
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@home.example", "type": "home", "primary": false},
                {"value": "third@x", "type": "other"}
            ])
        );
        // A single value (not a list) is appended too.
        let out = ok(
            &user(),
            json!({"op": "add", "path": "phoneNumbers", "value": {"value": "+1 555", "type": "work"}}),
        );
        assert_eq!(
            out["phoneNumbers"],
            json!([{"value": "+1 555", "type": "work"}])
        );
        // Pathless add appends as well.
        let out = ok(
            &user(),
            json!({"op": "add", "value": {"emails": [{"value": "fourth@x"}]}}),
        );
        assert_eq!(out["emails"].as_array().unwrap().len(), 3);
        // Adding nothing changes nothing.
        assert_eq!(
            ok(&user(), json!({"op": "add", "path": "emails", "value": []})),
            user()
        );
    }

    #[test]
    fn add_and_replace_on_singular_complex_merge() {
        for op in ["add", "replace"] {
            let out = ok(
                &user(),
                json!({"op": op, "path": "name", "value": {"familyName": "Smith", "middleName": "J"}}),
            );
            assert_eq!(
                out["name"],
                json!({"givenName": "Barbara", "familyName": "Smith", "middleName": "J", "formatted": "Barbara Jensen"}),
                "{op}"
            );
        }
        // A null sub-attribute in the value removes it.
        let out = ok(
            &user(),
            json!({"op": "replace", "path": "name", "value": {"formatted": null}}),
        );
        assert_eq!(
            out["name"],
            json!({"givenName": "Barbara", "familyName": "Jensen"})
        );
        fails(
            &user(),
            json!({"op": "replace", "path": "name", "value": "Barbara"}),
            ScimType::InvalidValue,
        );
    }

    #[test]
    fn replace_multi_valued_without_filter_replaces_all() {
        let out = ok(
            &user(),
            json!({"op": "replace", "path": "emails", "value": [{"value": "only@x", "type": "work", "primary": "true"}]}),
        );
        assert_eq!(
            out["emails"],
            json!([{"value": "only@x", "type": "work", "primary": true}])
        );
        let out = ok(&user(), json!({"op": "replace", "value": {"emails": []}}));
        assert!(out.get("emails").is_none());
    }

    #[test]
    fn replace_filtered_element_with_object_merges() {
        let out = ok(
            &user(),
            json!({"op": "replace", "path": "emails[type eq \"home\"]", "value": {"value": "new@home", "display": "Home"}}),
        );
        assert_eq!(
            out["emails"][1],
            json!({"value": "new@home", "type": "home", "primary": false, "display": "Home"})
        );
        // Constructible filter, no match: created from the filter plus the value.
        let out = ok(
            &user(),
            json!({"op": "add", "path": "phoneNumbers[type eq \"mobile\"]", "value": {"value": "+1"}}),
        );
        assert_eq!(
            out["phoneNumbers"],
            json!([{"type": "mobile", "value": "+1"}])
        );
        // A list of one element is the element.
        let out = ok(
            &user(),
            json!({"op": "replace", "path": "emails[type eq \"home\"]", "value": [{"value": "x@home"}]}),
        );
        assert_eq!(out["emails"][1]["value"], "x@home");
        // A bare string is not an element (an object), as in resource normalization.
        fails(
            &user(),
            json!({"op": "replace", "path": "emails[type eq \"home\"]", "value": "x@home"}),
            ScimType::InvalidValue,
        );
        fails(
            &user(),
            json!({"op": "replace", "path": "emails[type eq \"home\"]", "value": true}),
            ScimType::InvalidValue,
        );
    }

    #[test]
    fn sub_attribute_of_multi_valued_without_filter() {
        let out = ok(
            &user(),
            json!({"op": "replace", "path": "emails.type", "value": "other"}),
        );
        assert_eq!(out["emails"][0]["type"], "other");
        assert_eq!(out["emails"][1]["type"], "other");
        let mut start = user();
        start.as_object_mut().unwrap().remove("roles");
        let out = ok(
            &start,
            json!({"op": "replace", "path": "roles.value", "value": "viewer"}),
        );
        assert_eq!(out["roles"], json!([{"value": "viewer"}]));
        let out = ok(&user(), json!({"op": "remove", "path": "emails.primary"}));
        assert!(
            out["emails"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e.get("primary").is_none())
        );
    }

    #[test]
    fn setting_primary_clears_other_primaries() {
        let out = ok(
            &user(),
            json!({"op": "replace", "path": "emails[value eq \"babs@home.example\"].primary", "value": "True"}),
        );
        assert_eq!(out["emails"][0]["primary"], json!(false));
        assert_eq!(out["emails"][1]["primary"], json!(true));
        // Via an added element.
        let out = ok(
            &user(),
            json!({"op": "add", "path": "emails", "value": [{"value": "p@x", "primary": "true"}]}),
        );
        assert_eq!(out["emails"][0]["primary"], json!(false));
        assert_eq!(out["emails"][2], json!({"value": "p@x", "primary": true}));
        // Setting primary false touches nothing else.
        let out = ok(
            &user(),
            json!({"op": "replace", "path": "emails[type eq \"home\"].primary", "value": false}),
        );
        assert_eq!(out, user());
        assert!(crate::scim::resource::normalize_user(&out).is_ok());
    }

    #[test]
    fn string_booleans_in_sub_attributes() {
        let out = ok(
            &user(),
            json!({"op": "replace", "path": "roles", "value": [{"value": "viewer", "type": "role", "primary": "False"}]}),
        );
        assert_eq!(
            out["roles"],
            json!([{"value": "viewer", "type": "role", "primary": false}])
        );
        fails(
            &user(),
            json!({"op": "replace", "path": "roles", "value": [{"value": "viewer", "primary": "maybe"}]}),
            ScimType::InvalidValue,
        );
    }

    #[test]
    fn null_and_empty_values_remove() {
        let mut expected = user();
        expected.as_object_mut().unwrap().remove("title");
        assert_eq!(
            ok(
                &user(),
                json!({"op": "replace", "path": "title", "value": null})
            ),
            expected
        );
        assert_eq!(
            ok(
                &user(),
                json!({"op": "replace", "path": "title", "value": ""})
            ),
            expected
        );
        assert_eq!(
            ok(&user(), json!({"op": "replace", "value": {"title": null}})),
            expected
        );
        let out = ok(
            &user(),
            json!({"op": "replace", "path": "name.givenName", "value": ""}),
        );
        assert!(out["name"].get("givenName").is_none());
        let out = ok(
            &user(),
            json!({"op": "replace", "path": "emails[type eq \"home\"]", "value": null}),
        );
        assert_eq!(out["emails"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn external_id_is_writable() {
        let out = ok(
            &user(),
            json!({"op": "replace", "path": "externalId", "value": "NEW-ID"}),
        );
        assert_eq!(out["externalId"], "NEW-ID");
        let out = ok(&user(), json!({"op": "remove", "path": "externalId"}));
        assert!(out.get("externalId").is_none());
    }

    #[test]
    fn password_is_accepted_and_ignored() {
        assert_eq!(
            ok(
                &user(),
                json!({"op": "replace", "path": "password", "value": "s3cret"})
            ),
            user()
        );
        assert_eq!(
            ok(
                &user(),
                json!({"op": "add", "value": {"password": "s3cret"}})
            ),
            user()
        );
        assert_eq!(
            ok(&user(), json!({"op": "remove", "path": "password"})),
            user()
        );
    }

    // ----- errors -----

    #[test]
    fn unknown_paths_are_invalid_path() {
        for path in [
            "bogus",
            "name.bogus",
            "emails[type eq \"work\"].bogus",
            "urn:x:y:bogus",
            "userName.x",
        ] {
            fails(
                &user(),
                json!({"op": "replace", "path": path, "value": "x"}),
                ScimType::InvalidPath,
            );
        }
        let e = fails(
            &user(),
            json!({"op": "replace", "value": {"bogus": 1}}),
            ScimType::InvalidPath,
        );
        assert!(
            e.detail.contains("unknown attribute 'bogus'"),
            "{}",
            e.detail
        );
        assert!(e.detail.starts_with("Operations[0]: "), "{}", e.detail);
        fails(
            &user(),
            json!({"op": "remove", "path": "bogus"}),
            ScimType::InvalidPath,
        );
        fails(
            &user(),
            json!({"op": "replace", "path": "emails[bogus eq \"x\"]", "value": {}}),
            ScimType::InvalidFilter,
        );
    }

    #[test]
    fn read_only_targets_are_mutability_errors() {
        for path in [
            "id",
            "meta",
            "meta.created",
            "meta.lastModified",
            "groups",
            "groups[value eq \"g\"]",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName",
        ] {
            let e = fails(
                &user(),
                json!({"op": "replace", "path": path, "value": "x"}),
                ScimType::Mutability,
            );
            assert!(e.detail.contains("readOnly"), "{}", e.detail);
            fails(
                &user(),
                json!({"op": "remove", "path": path}),
                ScimType::Mutability,
            );
        }
    }

    #[test]
    fn user_name_cannot_be_removed() {
        let e = fails(
            &user(),
            json!({"op": "remove", "path": "userName"}),
            ScimType::Mutability,
        );
        assert!(e.detail.contains("userName is required"), "{}", e.detail);
        fails(
            &user(),
            json!({"op": "replace", "path": "userName", "value": ""}),
            ScimType::Mutability,
        );
        fails(
            &user(),
            json!({"op": "replace", "path": "userName", "value": null}),
            ScimType::Mutability,
        );
        fails(
            &user(),
            json!({"op": "replace", "value": {"userName": null}}),
            ScimType::Mutability,
        );
    }

    #[test]
    fn wrong_value_shapes_are_invalid_value() {
        for (path, value) in [
            ("title", json!({"a": 1})),
            ("title", json!(true)),
            ("title", json!(["a", "b"])),
            ("active", json!("maybe")),
            ("active", json!({"active": false})),
            ("emails", json!([["nested"]])),
            ("emails", json!([{"value": {"x": 1}}])),
            ("name.givenName", json!({"x": 1})),
            (
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                json!(true),
            ),
        ] {
            fails(
                &user(),
                json!({"op": "replace", "path": path, "value": value}),
                ScimType::InvalidValue,
            );
        }
        fails(
            &user(),
            json!({"op": "replace", "value": "x"}),
            ScimType::InvalidValue,
        );
        fails(
            &user(),
            json!({"op": "replace", "value": {ENT: "x"}}),
            ScimType::InvalidValue,
        );
        fails(
            &user(),
            json!({"op": "add", "path": "title"}),
            ScimType::InvalidValue,
        );
    }

    #[test]
    fn all_or_nothing() {
        let b = body(json!([
            {"op": "replace", "path": "title", "value": "Changed"},
            {"op": "add", "path": "emails", "value": {"value": "z@x"}},
            {"op": "replace", "path": "bogus", "value": "x"}
        ]));
        let e = run(&user(), &b).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
        // Same with an error found only while applying.
        let ops = vec![
            PatchOp {
                op: OpKind::Replace,
                path: Some(parse_path("title").unwrap()),
                value: Some(json!("Changed")),
            },
            PatchOp {
                op: OpKind::Remove,
                path: Some(parse_path("userName").unwrap()),
                value: None,
            },
        ];
        let mut resource = user();
        let e = apply(&mut resource, &ops).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::Mutability));
        assert!(e.detail.starts_with("Operations[1]: "), "{}", e.detail);
        assert_eq!(resource, user());
    }

    #[test]
    fn several_ops_apply_in_order() {
        let out = run(
            &user(),
            &body(json!([
                {"op": "Replace", "path": "title", "value": "A"},
                {"op": "Replace", "path": "title", "value": "B"},
                {"op": "Remove", "path": "displayName"},
                {"op": "Add", "path": "nickName", "value": "Babs"}
            ])),
        )
        .unwrap();
        assert_eq!(out["title"], "B");
        assert!(out.get("displayName").is_none());
        assert_eq!(out["nickName"], "Babs");
    }

    // ----- request parsing -----

    #[test]
    fn request_envelope() {
        let ops =
            parse_request(&json!({"Operations": [{"op": "replace", "value": {"active": false}}]}))
                .unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].op, OpKind::Replace);
        assert!(ops[0].path.is_none());
        let ops = parse_request(&json!({"schemas": [PATCH_OP_SCHEMA], "operations": [{"OP": "Remove", "PATH": "title"}]})).unwrap();
        assert_eq!(ops[0].op, OpKind::Remove);
        assert_eq!(ops[0].path.as_ref().unwrap().attr.attr.name, "title");

        let syntax = |b: Value| {
            let e = parse_request(&b).unwrap_err();
            assert_eq!(
                e.scim_type,
                Some(ScimType::InvalidSyntax),
                "{b}: {}",
                e.detail
            );
        };
        syntax(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": [{"op": "remove", "path": "title"}]}),
        );
        syntax(json!({"Operations": []}));
        syntax(json!({"Operations": {"op": "remove"}}));
        syntax(json!({"schemas": [PATCH_OP_SCHEMA]}));
        syntax(json!([{"op": "remove", "path": "title"}]));
        syntax(json!("test"));
        syntax(json!({"Operations": ["remove"]}));

        let e = parse_request(&body(json!([{"op": "remove"}]))).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::NoTarget));
        let e = parse_request(&body(json!([{"op": "add", "path": "title"}]))).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        let e = parse_request(&body(json!([{"op": "add", "value": [1]}]))).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        let e = parse_request(&body(json!([{"op": "add", "path": 5, "value": 1}]))).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
        let e = parse_request(&body(
            json!([{"op": "remove", "path": schema::USER_SCHEMA}]),
        ))
        .unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
        // An empty path on add/replace means no path.
        let ops = parse_request(&body(
            json!([{"op": "add", "path": "", "value": {"title": "x"}}]),
        ))
        .unwrap();
        assert!(ops[0].path.is_none());
    }

    #[test]
    fn path_parsing() {
        let p = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attr.attr.name, "emails");
        assert!(p.attr.sub.is_none());
        assert_eq!(p.sub_after_filter.unwrap().name, "value");
        let f = p.filter.unwrap();
        assert!(filter::matches_element(&f, &json!({"type": "WORK"})));
        assert!(!filter::matches_element(&f, &json!({"type": "home"})));

        let p = parse_path("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName").unwrap();
        assert_eq!(p.attr.json_path(), vec!["name", "givenName"]);
        assert!(p.filter.is_none() && p.sub_after_filter.is_none());

        let p = parse_path(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:roles[primary eq "True"].value"#,
        )
        .unwrap();
        assert_eq!(p.attr.attr.name, "roles");
        assert_eq!(p.sub_after_filter.unwrap().name, "value");

        let p = parse_path(r#"emails[type eq "work"]"#).unwrap();
        assert!(p.sub_after_filter.is_none());

        for bad in [
            "",
            "  ",
            "bogus",
            "name[givenName eq \"x\"]",
            "userName[value eq \"x\"]",
            "emails[type eq \"work\"]value",
            "emails[type eq \"work\"].bogus",
            "emails.value[type pr]",
            "urn:ietf:params:scim:schemas:core:2.0:User",
        ] {
            let e = parse_path(bad).unwrap_err();
            assert_eq!(
                e.scim_type,
                Some(ScimType::InvalidPath),
                "{bad}: {}",
                e.detail
            );
        }
        for bad in [
            "emails[type eq]",
            "emails[type eq \"work\"",
            "emails[bogus pr]",
            "emails[type eq \"a\"]]",
        ] {
            let e = parse_path(bad).unwrap_err();
            assert!(
                matches!(
                    e.scim_type,
                    Some(ScimType::InvalidFilter | ScimType::InvalidPath)
                ),
                "{bad}: {e:?}"
            );
        }
        let long = format!("emails[value eq \"{}\"]", "a".repeat(MAX_PATH_LEN));
        assert_eq!(
            parse_path(&long).unwrap_err().scim_type,
            Some(ScimType::InvalidPath)
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::from),
            prop_oneof![
                Just("True"),
                Just("false"),
                Just(""),
                Just("work"),
                Just("admin"),
                Just("x@y")
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("value"),
                            Just("type"),
                            Just("primary"),
                            Just("givenName"),
                            Just("display"),
                            Just("bogus")
                        ],
                        inner
                    ),
                    0..4
                )
                .prop_map(|kv| Value::Object(
                    kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #[test]
        fn random_ops_never_panic_and_fail_atomically(
            ops in proptest::collection::vec((
                prop_oneof![Just("add"), Just("Replace"), Just("remove"), Just("copy")],
                proptest::option::of(prop_oneof![
                    Just("userName"), Just("active"), Just("title"), Just("name"), Just("name.givenName"),
                    Just("emails"), Just("emails.value"), Just(r#"emails[type eq "work"].value"#),
                    Just(r#"emails[type eq "work"]"#), Just(r#"roles[primary eq "True"].value"#),
                    Just("roles"), Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"),
                    Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
                    Just("id"), Just("password"), Just("emails[value co \"x\"].primary"), Just("bogus["),
                ]),
                proptest::option::of(arb_json()),
            ), 1..5),
        ) {
            let ops: Vec<Value> = ops.into_iter().map(|(op, path, value)| {
                let mut o = json!({"op": op});
                if let Some(p) = path { o["path"] = json!(p); }
                if let Some(v) = value { o["value"] = v; }
                o
            }).collect();
            let _ = run(&user(), &body(Value::Array(ops)));
        }

        #[test]
        fn random_paths_never_panic(path in "\\PC{0,80}") {
            let _ = parse_path(&path);
        }
    }
}
