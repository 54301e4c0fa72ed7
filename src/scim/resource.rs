//! The User resource: normalization of client bodies into the canonical stored form,
//! rendering, attribute projection, and the other protocol documents (ListResponse,
//! ServiceProviderConfig, ResourceTypes).
//!
//! Canonical stored form: a JSON object with keys in canonical case; core attributes at
//! the top level; enterprise attributes in an object under [`ENTERPRISE_USER_SCHEMA`];
//! `externalId` when set; never `id`, `meta`, `schemas`, `password` or `groups`; no nulls,
//! no empty strings, no empty arrays or objects; `active` and `roles` present only when
//! the client sent them (rendering adds the effective role when none is stored).

use crate::domain::Role;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::scim::error::ScimError;
use crate::scim::schema::{
    self, AttrRef, AttrType, Attribute, ENTERPRISE_USER_SCHEMA, Mutability, USER, USER_SCHEMA,
};

pub const DEFAULT_ROLE: Role = Role::Contributor;
/// The `type` stored on a role entry when the client sent none.
pub const DEFAULT_ROLE_TYPE: &str = "role";

pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const SERVICE_PROVIDER_CONFIG_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

// ---------------------------------------------------------------------------
// Normalization
// ---------------------------------------------------------------------------

/// Turn a client-sent User body (POST or PUT, or the result of a PATCH) into canonical
/// stored form. See the module documentation for the form, and the tests for the rules.
pub fn normalize_user(body: &Value) -> Result<Value, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the User resource must be a JSON object"))?;
    if has_nul(body) {
        return Err(ScimError::invalid_value(
            "strings may not contain NUL characters (\\u0000)",
        ));
    }

    let mut whole: Vec<(AttrRef, &Value)> = Vec::new();
    let mut parts: Vec<(AttrRef, &Value)> = Vec::new();
    for (key, value) in obj {
        collect(key, value, None, &mut whole, &mut parts)?;
    }

    let mut core = Map::new();
    let mut ext = Map::new();
    // Whole attributes first, then dotted "attr.sub" keys merged on top of them, so that
    // {"name": {...}, "name.givenName": "A"} keeps the other name parts whatever the key order.
    for (r, value) in whole {
        let target = if r.is_extension() {
            &mut ext
        } else {
            &mut core
        };
        match normalize_attr(r.attr, value, &label(&r))? {
            Some(v) => target.insert(r.attr.name.to_owned(), v),
            None => target.remove(r.attr.name),
        };
    }
    for (r, value) in parts {
        let Some(sub) = r.sub else { continue };
        if r.attr.multi_valued {
            // "emails.value" as a key cannot say which entry it means: ignored.
            continue;
        }
        let target = if r.is_extension() {
            &mut ext
        } else {
            &mut core
        };
        let normalized = normalize_simple(sub, value, &label(&r))?;
        let entry = target
            .entry(r.attr.name)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            match normalized {
                Some(v) => m.insert(sub.name.to_owned(), v),
                None => m.remove(sub.name),
            };
            if m.is_empty() {
                target.remove(r.attr.name);
            }
        }
    }

    if !matches!(core.get("userName"), Some(Value::String(s)) if !s.is_empty()) {
        return Err(ScimError::invalid_value("userName is required"));
    }
    // No `active` and no `roles` stay absent in the stored form: what a client sends
    // is what it changes. The member is still active with role contributor (see
    // `facts`), and the rendered resource says so (`render_user`).
    if let Some(roles) = normalize_roles(core.remove("roles"))? {
        core.insert("roles".to_owned(), roles);
    }
    if !ext.is_empty() {
        core.insert(ENTERPRISE_USER_SCHEMA.to_owned(), Value::Object(ext));
    }
    Ok(Value::Object(core))
}

/// Sort one body key into `whole` (an attribute) or `parts` (an "attr.sub" key), resolving
/// URN prefixes and schema containers; unknown, read-only and write-only attributes are
/// dropped here.
fn collect<'v>(
    key: &str,
    value: &'v Value,
    scope: Option<&'static str>,
    whole: &mut Vec<(AttrRef, &'v Value)>,
    parts: &mut Vec<(AttrRef, &'v Value)>,
) -> Result<(), ScimError> {
    let (urn, rest) = schema::split_urn(key);
    if let (Some(urn), "") = (urn, rest) {
        // A schema container: {"urn:...:enterprise:2.0:User": {"department": ...}}.
        if scope.is_some() {
            return Ok(());
        }
        return match value {
            Value::Object(m) => {
                for (k, v) in m {
                    collect(k, v, Some(urn), whole, parts)?;
                }
                Ok(())
            }
            Value::Null => Ok(()),
            _ => Err(ScimError::invalid_value(format!("{urn} must be an object"))),
        };
    }
    let urn = urn.or(scope);
    let mut pieces = rest.split('.');
    let attr = pieces.next().unwrap_or_default();
    let sub = pieces.next();
    if pieces.next().is_some() {
        return Ok(());
    }
    let Some(r) = schema::resolve_parts(urn, attr, sub) else {
        return Ok(());
    };
    // id, meta, groups (readOnly) and password (writeOnly) are never stored.
    if matches!(
        r.attr.mutability,
        Mutability::ReadOnly | Mutability::WriteOnly
    ) {
        return Ok(());
    }
    match r.sub {
        None => whole.push((r, value)),
        Some(s) if s.mutability != Mutability::ReadOnly => parts.push((r, value)),
        Some(_) => {}
    }
    Ok(())
}

/// The attribute as named in error details: "name.givenName", "urn:...:User:manager.value".
fn label(r: &AttrRef) -> String {
    let mut s = String::new();
    if r.is_extension() {
        s.push_str(ENTERPRISE_USER_SCHEMA);
        s.push(':');
    }
    s.push_str(r.attr.name);
    if let Some(sub) = r.sub {
        s.push('.');
        s.push_str(sub.name);
    }
    s
}

fn normalize_attr(
    attr: &'static Attribute,
    value: &Value,
    label: &str,
) -> Result<Option<Value>, ScimError> {
    if attr.multi_valued {
        normalize_multi(attr, value, label)
    } else if attr.ty == AttrType::Complex {
        normalize_complex(attr, value, label)
    } else {
        normalize_simple(attr, value, label)
    }
}

/// Does any string (or key) in `v` contain NUL? Such text cannot be stored.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// A singular simple value. `Ok(None)` means absent (null or blank string). A value
/// of another JSON type is `invalidValue` (see [`schema::type_mismatch`]).
fn normalize_simple(
    attr: &Attribute,
    value: &Value,
    label: &str,
) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    if let Value::String(s) = value
        && s.trim().is_empty()
    {
        return Ok(None);
    }
    if let Some(want) = schema::type_mismatch(attr, value) {
        return Err(ScimError::invalid_value(format!(
            "{label} must be {want}, got {}",
            kind(value)
        )));
    }
    Ok(Some(match value {
        Value::String(s) if attr.ty == AttrType::Boolean => {
            Value::Bool(schema::parse_bool(s).unwrap_or_default())
        }
        Value::String(s) => Value::String(s.trim().to_owned()),
        other => other.clone(),
    }))
}

fn kind(v: &Value) -> &'static str {
    schema::json_kind(v)
}

/// The sub-attributes of a complex value, in canonical case; unknown and read-only
/// sub-attributes dropped. `Ok(None)` when nothing is left.
fn normalize_object(
    attr: &'static Attribute,
    obj: &Map<String, Value>,
    label: &str,
) -> Result<Option<Value>, ScimError> {
    let mut out = Map::new();
    for (k, v) in obj {
        let Some(sub) = attr.sub(k) else { continue };
        if sub.mutability == Mutability::ReadOnly {
            continue;
        }
        if let Some(v) = normalize_simple(sub, v, &format!("{label}.{}", sub.name))? {
            out.insert(sub.name.to_owned(), v);
        }
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

/// A singular complex attribute (name, manager): an object. `manager` may also be a
/// list, of which the first non-null element is taken (Entra sends it that way).
fn normalize_complex(
    attr: &'static Attribute,
    value: &Value,
    label: &str,
) -> Result<Option<Value>, ScimError> {
    match value {
        Value::Null => Ok(None),
        Value::Object(m) => normalize_object(attr, m, label),
        Value::Array(items) if schema::takes_list(attr) => {
            match items.iter().find(|v| !v.is_null()) {
                None => Ok(None),
                Some(Value::Object(m)) => normalize_object(attr, m, label),
                Some(other) => Err(ScimError::invalid_value(format!(
                    "{label} must be an object, got a list of {}",
                    plural(other)
                ))),
            }
        }
        Value::String(s) if s.trim().is_empty() => Ok(None),
        other => Err(ScimError::invalid_value(format!(
            "{label} must be an object, got {}",
            kind(other)
        ))),
    }
}

fn plural(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "booleans",
        Value::Number(_) => "numbers",
        Value::String(_) => "strings",
        Value::Array(_) => "arrays",
        Value::Object(_) => "objects",
        Value::Null => "nulls",
    }
}

/// A multi-valued attribute: a list of objects, or a single object (wrapped). Empty
/// entries are dropped; at most one entry may be primary.
fn normalize_multi(
    attr: &'static Attribute,
    value: &Value,
    label: &str,
) -> Result<Option<Value>, ScimError> {
    let items: &[Value] = match value {
        Value::Array(items) => items,
        Value::Object(_) if attr.ty == AttrType::Complex => std::slice::from_ref(value),
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        other => {
            return Err(ScimError::invalid_value(format!(
                "{label} must be a list, got {}",
                kind(other)
            )));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let normalized = if attr.ty != AttrType::Complex {
            normalize_simple(attr, item, label)?
        } else {
            match item {
                Value::Null => None,
                Value::Object(m) => normalize_object(attr, m, label)?,
                Value::String(s) if s.trim().is_empty() => None,
                other => {
                    return Err(ScimError::invalid_value(format!(
                        "{label} entries must be objects, got {}",
                        kind(other)
                    )));
                }
            }
        };
        out.extend(normalized);
    }
    let primaries = out.iter().filter(|e| is_primary(e)).count();
    if primaries > 1 {
        return Err(ScimError::invalid_value(format!(
            "{label} has {primaries} entries with primary true; at most one is allowed"
        )));
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

fn is_primary(entry: &Value) -> bool {
    entry.get("primary") == Some(&Value::Bool(true))
}

/// Role rules: values lowercased and one of [`Role::ALL`]; `type` defaults to "role"; exactly
/// one entry has `primary: true` (the marked one, else the first). No roles: None (the
/// member's role is then [`DEFAULT_ROLE`]). Entries without a value are dropped.
fn normalize_roles(roles: Option<Value>) -> Result<Option<Value>, ScimError> {
    let entries = match roles {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    };
    let mut out: Vec<Map<String, Value>> = Vec::with_capacity(entries.len().max(1));
    for entry in entries {
        let Value::Object(mut m) = entry else {
            continue;
        };
        let Some(value) = m.get("value").and_then(Value::as_str) else {
            continue;
        };
        let lower = value.to_lowercase();
        let Some(role) = Role::ALL.into_iter().find(|r| r.as_str() == lower) else {
            return Err(ScimError::invalid_value(format!(
                "roles value \"{value}\" is not a valid role; allowed values: {}",
                Role::ALL.map(Role::as_str).join(", ")
            )));
        };
        m.insert("value".to_owned(), Value::from(role.as_str()));
        m.entry("type")
            .or_insert_with(|| Value::from(DEFAULT_ROLE_TYPE));
        out.push(m);
    }
    if out.is_empty() {
        return Ok(None);
    }
    // Fill `primary` where the client left it out, and only there: an explicit
    // `false` comes back as sent. The entry that counts is the one marked primary,
    // else the first (see `facts`), so that is the one filled with `true`.
    let any_primary = out
        .iter()
        .any(|m| m.get("primary") == Some(&Value::Bool(true)));
    for (i, m) in out.iter_mut().enumerate() {
        if !matches!(m.get("primary"), Some(Value::Bool(_))) {
            m.insert("primary".to_owned(), Value::Bool(!any_primary && i == 0));
        }
    }
    Ok(Some(Value::Array(
        out.into_iter().map(Value::Object).collect(),
    )))
}

// ---------------------------------------------------------------------------
// Facts
// ---------------------------------------------------------------------------

/// Indexed facts derived from canonical form (the store keeps these in columns).
#[derive(Debug, Clone, PartialEq)]
pub struct UserFacts {
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub role: Role,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// Email values, lowercased, in stored order.
    pub emails: Vec<String>,
}

/// Facts of a canonical User (as produced by [`normalize_user`]).
pub fn facts(canonical: &Value) -> UserFacts {
    let string = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let name = canonical.get("name");
    let roles = canonical
        .get("roles")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let role_entry = roles
        .iter()
        .find(|e| is_primary(e))
        .or_else(|| roles.first());
    let role = role_entry
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .and_then(|v| {
            Role::ALL
                .into_iter()
                .find(|r| r.as_str().eq_ignore_ascii_case(v))
        })
        .unwrap_or(DEFAULT_ROLE);
    let emails = canonical
        .get("emails")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|e| e.get("value").and_then(Value::as_str))
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default();
    UserFacts {
        user_name: string(canonical.get("userName")).unwrap_or_default(),
        external_id: string(canonical.get("externalId")),
        active: canonical
            .get("active")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        role,
        display_name: string(canonical.get("displayName")),
        given_name: string(name.and_then(|n| n.get("givenName"))),
        family_name: string(name.and_then(|n| n.get("familyName"))),
        emails,
    }
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// Server-side facts added when rendering a resource.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    pub id: &'a str,
    pub created: OffsetDateTime,
    pub last_modified: OffsetDateTime,
    pub version: i64,
    /// The resource's full URL, like "http://localhost:8080/scim/v2/Users/<id>".
    pub location: &'a str,
    /// The User's teams, as `groups` entries (see [`group_ref`]).
    pub groups: &'a [Value],
}

/// A SCIM dateTime: RFC 3339 in UTC with milliseconds, like `2026-11-22T10:49:21.123Z`.
pub fn format_datetime(t: OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_default()
}

/// The weak ETag of a version: `W/"<version>"`.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The roles of a member created without any: a contributor.
pub fn default_roles() -> Value {
    json!([{"value": DEFAULT_ROLE.as_str(), "type": DEFAULT_ROLE_TYPE, "primary": true}])
}

/// A User's `groups` entry for one of its teams (RFC 7643 §4.1.2).
pub fn group_ref(base_url: &str, team_id: &str, name: &str) -> Value {
    json!({
        "value": team_id,
        "display": name,
        "$ref": format!("{base_url}/scim/v2/Groups/{team_id}"),
        "type": "direct",
    })
}

/// The resource as returned: `schemas`, `id`, the canonical attributes, the effective
/// role when the client sent none (a contributor, said so, so an IdP's import shows the
/// real role), `groups` and `meta`.
pub fn render_user(canonical: &Value, meta: &Meta) -> Value {
    let mut out = canonical.as_object().cloned().unwrap_or_default();
    out.remove("password");
    // No roles stored: the member is a contributor, and the resource says so (an
    // IdP's import shows the real role; filters see the same, see `scim_sql`).
    if !out.contains_key("roles") {
        out.insert("roles".to_owned(), default_roles());
    }
    let mut schemas = vec![Value::from(USER_SCHEMA)];
    if out.contains_key(ENTERPRISE_USER_SCHEMA) {
        schemas.push(Value::from(ENTERPRISE_USER_SCHEMA));
    }
    out.insert("schemas".to_owned(), Value::Array(schemas));
    out.insert("id".to_owned(), Value::from(meta.id));
    out.insert("groups".to_owned(), Value::Array(meta.groups.to_vec()));
    out.insert(
        "meta".to_owned(),
        json!({
            "resourceType": "User",
            "created": format_datetime(meta.created),
            "lastModified": format_datetime(meta.last_modified),
            "location": meta.location,
            "version": etag(meta.version),
        }),
    );
    Value::Object(out)
}

// ---------------------------------------------------------------------------
// Projection (attributes / excludedAttributes)
// ---------------------------------------------------------------------------

/// A set of canonical key paths, as a tree. `all` selects the whole value at that node.
#[derive(Debug, Clone, Default, PartialEq)]
struct Mask {
    all: bool,
    children: BTreeMap<&'static str, Mask>,
}

impl Mask {
    fn add(&mut self, path: &[&'static str]) {
        if self.all {
            return;
        }
        match path.split_first() {
            None => {
                self.all = true;
                self.children.clear();
            }
            Some((head, rest)) => self.children.entry(head).or_default().add(rest),
        }
    }

    fn is_empty(&self) -> bool {
        !self.all && self.children.is_empty()
    }
}

/// Attributes with `returned: always`: never dropped by a projection.
const ALWAYS: [&str; 2] = ["id", "schemas"];

/// The `attributes` / `excludedAttributes` query parameters (RFC 7644 §3.4.2.5, §3.9).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    include: Option<Mask>,
    exclude: Mask,
}

impl Projection {
    /// Parse the two comma-separated lists of attribute paths (any case, URN-qualified
    /// allowed, a bare schema URN meaning all of that schema's attributes). Unknown names
    /// are ignored as RFC 7644 asks; a blank list counts as absent. When both are given,
    /// `attributes` selects and `excludedAttributes` then removes. Never fails today; the
    /// `Result` keeps room for stricter checks.
    pub fn parse(
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Projection, ScimError> {
        Self::parse_with(attributes, excluded, list_paths)
    }

    /// [`Projection::parse`] for Group resources.
    pub fn parse_group(
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Projection, ScimError> {
        Self::parse_with(attributes, excluded, group_list_paths)
    }

    fn parse_with(
        attributes: Option<&str>,
        excluded: Option<&str>,
        list_paths: fn(&str) -> Vec<Vec<&'static str>>,
    ) -> Result<Projection, ScimError> {
        let include = attributes.filter(|s| !s.trim().is_empty()).map(|s| {
            let mut mask = Mask::default();
            for path in list_paths(s) {
                mask.add(&path);
            }
            mask
        });
        let mut exclude = Mask::default();
        for path in list_paths(excluded.unwrap_or_default()) {
            if path.len() == 1 && ALWAYS.contains(&path[0]) {
                continue;
            }
            exclude.add(&path);
        }
        Ok(Projection { include, exclude })
    }

    /// True when [`Projection::apply`] returns resources unchanged.
    pub fn is_identity(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty()
    }

    /// Does the projection keep (some of) the top-level attribute `key`?
    pub fn keeps(&self, key: &str) -> bool {
        if self.exclude.children.get(key).is_some_and(|m| m.all) {
            return false;
        }
        match &self.include {
            None => true,
            Some(m) => m.all || m.children.contains_key(key),
        }
    }

    /// Project one element of the multi-valued top-level attribute `key` (which
    /// [`Projection::keeps`]); None when nothing of it is kept. For resources whose
    /// elements are rendered one at a time (a team's members are streamed).
    pub fn element(&self, key: &str, element: Value) -> Option<Value> {
        let mut element = match &self.include {
            Some(m) if !m.all => match m.children.get(key) {
                Some(child) => keep(&element, child)?,
                None => return None,
            },
            _ => element,
        };
        if let Some(child) = self.exclude.children.get(key) {
            if child.all {
                return None;
            }
            prune_value(&mut element, child);
            if is_empty_container(&element) {
                return None;
            }
        }
        Some(element)
    }

    /// Project a rendered resource.
    pub fn apply(&self, resource: Value) -> Value {
        if self.is_identity() {
            return resource;
        }
        let Value::Object(mut obj) = resource else {
            return resource;
        };
        if let Some(include) = &self.include {
            let mut out = Map::new();
            for key in ALWAYS {
                if let Some(v) = obj.remove(key) {
                    out.insert(key.to_owned(), v);
                }
            }
            for (key, mask) in &include.children {
                if let Some(kept) = obj.get(*key).and_then(|v| keep(v, mask)) {
                    out.insert((*key).to_owned(), kept);
                }
            }
            obj = out;
        }
        prune(&mut obj, &self.exclude);
        // "schemas" lists the schemas present in the resource.
        if !obj.contains_key(ENTERPRISE_USER_SCHEMA)
            && let Some(Value::Array(schemas)) = obj.get_mut("schemas")
        {
            schemas.retain(|s| {
                !s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA))
            });
        }
        Value::Object(obj)
    }
}

/// The canonical key paths named by a comma-separated attribute list.
fn list_paths(list: &str) -> Vec<Vec<&'static str>> {
    let mut paths = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match schema::split_urn(item) {
            (Some(urn), "") if urn == ENTERPRISE_USER_SCHEMA => {
                paths.push(vec![ENTERPRISE_USER_SCHEMA]);
            }
            (Some(_), "") => {
                paths.extend(USER.attributes.iter().map(|a| vec![a.name]));
                paths.push(vec!["externalId"]);
            }
            _ => paths.extend(schema::resolve(item).map(|r| r.json_path())),
        }
    }
    paths
}

/// The canonical key paths named by a comma-separated list of Group attributes.
fn group_list_paths(list: &str) -> Vec<Vec<&'static str>> {
    let mut paths = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item.eq_ignore_ascii_case(schema::GROUP_SCHEMA) {
            paths.extend(schema::GROUP.attributes.iter().map(|a| vec![a.name]));
            paths.push(vec!["externalId"]);
            continue;
        }
        paths.extend(schema::resolve_group(item).map(|r| r.json_path()));
    }
    paths
}

/// The part of `value` selected by `mask` (arrays are transparent); `None` when empty.
fn keep(value: &Value, mask: &Mask) -> Option<Value> {
    if mask.all {
        return Some(value.clone());
    }
    match value {
        Value::Object(m) => {
            let mut out = Map::new();
            for (key, child) in &mask.children {
                if let Some(kept) = m.get(*key).and_then(|v| keep(v, child)) {
                    out.insert((*key).to_owned(), kept);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) => {
            let kept: Vec<Value> = items.iter().filter_map(|v| keep(v, mask)).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        _ => None,
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Remove the paths in `mask` from `obj`; containers emptied by the removal go too.
fn prune(obj: &mut Map<String, Value>, mask: &Mask) {
    for (key, child) in &mask.children {
        if child.all {
            obj.remove(*key);
            continue;
        }
        let Some(v) = obj.get_mut(*key) else { continue };
        if is_empty_container(v) {
            continue;
        }
        prune_value(v, child);
        if is_empty_container(v) {
            obj.remove(*key);
        }
    }
}

fn prune_value(v: &mut Value, mask: &Mask) {
    match v {
        Value::Object(m) => prune(m, mask),
        Value::Array(items) => {
            for item in items.iter_mut() {
                prune_value(item, mask);
            }
            items.retain(|item| !is_empty_container(item));
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Protocol documents
// ---------------------------------------------------------------------------

/// A ListResponse (RFC 7644 §3.4.2). `itemsPerPage` is the number of resources returned.
pub fn list_response(resources: Vec<Value>, total: u64, start_index: u64) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// The ServiceProviderConfig (RFC 7643 §5). `base` is the SCIM base URL.
pub fn service_provider_config(base: &str, max_results: u64) -> Value {
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": max_results },
        "changePassword": { "supported": false },
        "sort": { "supported": true },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication scheme using the OAuth Bearer Token Standard",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", base.trim_end_matches('/')),
        },
    })
}

/// The ResourceTypes (RFC 7643 §6): "User" and "Group" (a workspace's teams).
pub fn resource_types(base: &str) -> Vec<Value> {
    let group = json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "Group",
        "name": "Group",
        "endpoint": "/Groups",
        "description": "Group: a team of the workspace",
        "schema": schema::GROUP_SCHEMA,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{}/ResourceTypes/Group", base.trim_end_matches('/')),
        },
    });
    vec![
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "User Account",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{ "schema": ENTERPRISE_USER_SCHEMA, "required": false }],
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{}/ResourceTypes/User", base.trim_end_matches('/')),
            },
        }),
        group,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::error::ScimType;
    use proptest::prelude::*;
    use time::macros::datetime;

    const ENT: &str = ENTERPRISE_USER_SCHEMA;

    fn norm(body: Value) -> Value {
        normalize_user(&body).unwrap_or_else(|e| panic!("{body} should normalize: {e}"))
    }

    fn norm_err(body: Value) -> ScimError {
        match normalize_user(&body) {
            Ok(v) => panic!("{body} should be rejected, got {v}"),
            Err(e) => {
                assert_eq!(e.status, 400);
                e
            }
        }
    }

    fn invalid_value(body: Value) -> String {
        let e = norm_err(body);
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{e}");
        e.detail
    }

    /// A single contributor role in canonical form (what an explicit `contributor` becomes;
    /// never injected when the client sends no roles).
    fn contributor_roles() -> Value {
        json!([{"value": "contributor", "type": "role", "primary": true}])
    }

    fn meta() -> Meta<'static> {
        Meta {
            id: "0192f0e4-1111-7000-8000-000000000001",
            created: datetime!(2026-11-22 10:49:21.123456 UTC),
            last_modified: datetime!(2026-11-22 12:49:21.5 +02:00),
            version: 7,
            location: "http://localhost:8080/scim/v2/Users/0192f0e4-1111-7000-8000-000000000001",
            groups: &[],
        }
    }

    fn okta_create() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "test.user@okta.local",
            "name": {"givenName": "Test", "familyName": "User"},
            "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
            "displayName": "Test User",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [],
            "password": "1mz050nq",
            "active": true
        })
    }

    fn entra_create() -> Value {
        json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
            ],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee@testuser.com",
            "active": true,
            "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "roles": [],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "1234",
                "department": "Sales",
                "manager": {"value": "0192f0e4-2222-7000-8000-000000000002"}
            }
        })
    }

    // --- normalize_user: key matching -------------------------------------

    #[test]
    fn keys_matched_case_insensitively() {
        let v = norm(json!({
            "UserName": "Alice@Example.COM",
            "Emails": [{"VALUE": "alice@example.com", "Type": "work", "PRIMARY": true}],
            "NAME": {"GivenName": "Alice", "FAMILYNAME": "Liddell"},
            "ACTIVE": false,
            "externalid": "ext-1",
            "DisplayName": "Alice L"
        }));
        assert_eq!(
            v,
            json!({
                "userName": "Alice@Example.COM",
                "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
                "name": {"givenName": "Alice", "familyName": "Liddell"},
                "active": false,
                "externalId": "ext-1",
                "displayName": "Alice L"
            })
        );
    }

    #[test]
    fn urn_qualified_core_keys_accepted() {
        let v = norm(json!({
            "urn:ietf:params:scim:schemas:core:2.0:User:userName": "bob@x.io",
            "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:displayName": "Bob",
            "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName": "Bob"
        }));
        assert_eq!(
            v,
            json!({
                "userName": "bob@x.io",
                "displayName": "Bob",
                "name": {"givenName": "Bob"}
            })
        );
    }

    #[test]
    fn core_schema_container_accepted() {
        let v = norm(json!({
            "urn:ietf:params:scim:schemas:core:2.0:User": {"userName": "c@x.io", "title": "Boss"}
        }));
        assert_eq!(v["userName"], "c@x.io");
        assert_eq!(v["title"], "Boss");
    }

    #[test]
    fn enterprise_extension_object_case_insensitive() {
        let v = norm(json!({
            "userName": "a@b.c",
            "URN:ietf:params:scim:schemas:extension:enterprise:2.0:user": {
                "Department": "Sales",
                "COSTCENTER": "42",
                "manager": {"VALUE": "m-1"},
                "unknownThing": "x"
            }
        }));
        assert_eq!(
            v[ENT],
            json!({"department": "Sales", "costCenter": "42", "manager": {"value": "m-1"}})
        );
        // userName and the extension only: no injected `active` or `roles`.
        assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    }

    #[test]
    fn enterprise_urn_qualified_top_level_keys_fold_into_extension() {
        let v = norm(json!({
            "userName": "a@b.c",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "X",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value": "m-9",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"division": "D", "department": "old"}
        }));
        // Whole attributes: division from the container; department from whichever whole key
        // came last, both being whole attributes; manager.value merged on top.
        assert_eq!(v[ENT]["division"], "D");
        assert_eq!(v[ENT]["manager"], json!({"value": "m-9"}));
        let dept = v[ENT]["department"].as_str().unwrap();
        assert!(dept == "X" || dept == "old");

        let v = norm(json!({
            "userName": "a@b.c",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "X"
        }));
        assert_eq!(v[ENT], json!({"department": "X"}));
    }

    #[test]
    fn dotted_name_keys_fold_into_name_keeping_other_parts() {
        let v = norm(json!({
            "userName": "a@b.c",
            "name": {"givenName": "Old", "familyName": "Keep", "formatted": "Old Keep"},
            "name.givenName": "New",
            "Name.MiddleName": "M",
            "name.formatted": null
        }));
        assert_eq!(
            v["name"],
            json!({"givenName": "New", "familyName": "Keep", "middleName": "M"})
        );
        let v = norm(json!({"userName": "a@b.c", "name.familyName": "Only"}));
        assert_eq!(v["name"], json!({"familyName": "Only"}));
        // A dotted key clearing the only part removes the whole attribute.
        let v =
            norm(json!({"userName": "a@b.c", "name": {"givenName": "X"}, "name.givenName": ""}));
        assert!(v.get("name").is_none(), "{v}");
    }

    #[test]
    fn ignored_attributes_are_dropped() {
        let v = norm(json!({
            "id": "abc",
            "ID": "abc",
            "meta": {"resourceType": "User", "version": "W/\"3\""},
            "meta.version": "x",
            "schemas": [USER_SCHEMA],
            "groups": [{"value": "g1", "display": "G"}],
            "password": "secret",
            "Password": "secret",
            "urn:ietf:params:scim:schemas:core:2.0:User:password": "secret",
            "favouriteColour": "blue",
            "name.nonsense": "x",
            "emails.value": "x@y.z",
            "a.b.c": 1,
            "urn:ietf:params:scim:schemas:extension:other:2.0:User:thing": 1,
            "userName": "a@b.c",
            "name": {"givenName": "A", "nickname": "unknown sub"}
        }));
        assert_eq!(
            v,
            json!({
                "userName": "a@b.c",
                "name": {"givenName": "A"}
            })
        );
    }

    // --- booleans ---------------------------------------------------------

    #[test]
    fn boolean_strings_accepted_any_case() {
        for (input, expect) in [
            (json!(true), true),
            (json!(false), false),
            (json!("True"), true),
            (json!("true"), true),
            (json!("TRUE"), true),
            (json!("False"), false),
            (json!("false"), false),
            (json!("fAlSe"), false),
            (json!(" False "), false),
        ] {
            let v = norm(json!({"userName": "a@b.c", "active": input}));
            assert_eq!(v["active"], json!(expect), "{input}");
            assert_eq!(facts(&v).active, expect, "{input}");
        }
        let v = norm(json!({
            "userName": "a@b.c",
            "emails": [{"value": "a@b.c", "primary": "True"}, {"value": "b@b.c", "primary": "false"}]
        }));
        assert_eq!(
            v["emails"],
            json!([{"value": "a@b.c", "primary": true}, {"value": "b@b.c", "primary": false}])
        );
    }

    #[test]
    fn boolean_garbage_rejected_naming_attribute() {
        for bad in [json!("yes"), json!(1), json!(0), json!({}), json!([true])] {
            let detail = invalid_value(json!({"userName": "a@b.c", "active": bad}));
            assert!(detail.contains("active"), "{detail}");
        }
        let detail = invalid_value(
            json!({"userName": "a@b.c", "emails": [{"value": "x", "primary": "yes"}]}),
        );
        assert!(detail.contains("emails.primary"), "{detail}");
    }

    #[test]
    fn absent_boolean_values_stay_absent_and_active_defaults_true() {
        for absent in [json!(null), json!(""), json!("  ")] {
            let v = norm(json!({"userName": "a@b.c", "active": absent}));
            assert!(v.get("active").is_none(), "{absent} -> {v}");
            assert!(facts(&v).active, "{absent}");
        }
    }

    // --- type checks ------------------------------------------------------

    #[test]
    fn numbers_and_booleans_rejected_for_string_attributes() {
        // Not read as their text: a numeric externalId or employeeNumber is a client
        // bug, and storing "123" would change data the client did not mean to send.
        for body in [
            json!({"userName": "a@b.c", "externalId": 123}),
            json!({"userName": "a@b.c", "externalId": true}),
            json!({"userName": "a@b.c", ENT: {"employeeNumber": 12345}}),
            json!({"userName": "a@b.c", ENT: {"costCenter": 1.5}}),
            json!({"userName": "a@b.c", "displayName": false}),
            json!({"userName": "a@b.c", "name.givenName": 5}),
        ] {
            let err = normalize_user(&body).unwrap_err();
            assert_eq!(err.scim_type, Some(ScimType::InvalidValue), "{body}");
            assert!(err.detail.contains("must be a string"), "{}", err.detail);
        }
    }

    #[test]
    fn objects_and_arrays_rejected_for_string_attributes() {
        let detail = invalid_value(json!({"userName": "a@b.c", "displayName": {"x": 1}}));
        assert!(detail.contains("displayName"), "{detail}");
        let detail = invalid_value(json!({"userName": "a@b.c", "title": ["a"]}));
        assert!(detail.contains("title"), "{detail}");
        let detail = invalid_value(json!({"userName": "a@b.c", ENT: {"employeeNumber": {"v": 1}}}));
        assert!(detail.contains("employeeNumber"), "{detail}");
        let detail = invalid_value(json!({"userName": "a@b.c", "name": {"givenName": ["A"]}}));
        assert!(detail.contains("name.givenName"), "{detail}");
        let detail = invalid_value(json!({"userName": {"value": "a@b.c"}}));
        assert!(detail.contains("userName"), "{detail}");
    }

    #[test]
    fn singular_complex_needs_object() {
        let detail = invalid_value(json!({"userName": "a@b.c", "name": "Bob"}));
        assert!(detail.contains("name"), "{detail}");
        let detail = invalid_value(json!({"userName": "a@b.c", "name": true}));
        assert!(detail.contains("name"), "{detail}");
    }

    #[test]
    fn enterprise_container_must_be_object() {
        let detail = invalid_value(json!({"userName": "a@b.c", ENT: "Sales"}));
        assert!(detail.contains(ENT), "{detail}");
        // null container: absent
        let v = norm(json!({"userName": "a@b.c", ENT: null}));
        assert!(v.get(ENT).is_none());
    }

    #[test]
    fn multi_valued_wraps_a_single_object_and_refuses_scalars() {
        let v = norm(json!({
            "userName": "a@b.c",
            "emails": {"value": "a@b.c", "type": "work"},
        }));
        assert_eq!(v["emails"], json!([{"value": "a@b.c", "type": "work"}]));
        for (key, bad) in [
            ("emails", json!([["a@b.c"]])),
            ("emails", json!("a@b.c")),
            ("emails", json!(["a@b.c"])),
            ("phoneNumbers", json!("+1 555 0100")),
            (
                "ims",
                json!(["alice", {"value": "alice2", "type": "skype"}]),
            ),
            ("x509Certificates", json!(["MIIC..."])),
            ("addresses", json!(5)),
        ] {
            let mut body = json!({"userName": "a@b.c"});
            body[key] = bad.clone();
            let detail = invalid_value(body);
            assert!(detail.contains(key), "{bad}: {detail}");
        }
    }

    #[test]
    fn name_is_an_object_not_a_list() {
        for bad in [json!(["Ada"]), json!([{"givenName": "Ada"}])] {
            let detail = invalid_value(json!({"userName": "a@b.c", "name": bad}));
            assert!(detail.contains("name"), "{detail}");
        }
    }

    #[test]
    fn null_empty_string_and_empty_array_are_absent() {
        let v = norm(json!({
            "userName": "a@b.c",
            "displayName": null,
            "nickName": "",
            "title": "   ",
            "emails": [],
            "phoneNumbers": [null, "", {"value": ""}, {}],
            "addresses": null,
            "name": {"givenName": "", "familyName": null},
            "externalId": "",
            ENT: {"department": "", "manager": {"value": ""}}
        }));
        assert_eq!(v, json!({"userName": "a@b.c"}));
    }

    #[test]
    fn strings_trimmed() {
        let v = norm(json!({
            "userName": "  Alice@Example.com ",
            "displayName": " Alice ",
            "emails": [{"value": " Alice@Example.COM  ", "type": "work"}]
        }));
        assert_eq!(v["userName"], "Alice@Example.com");
        assert_eq!(v["displayName"], "Alice");
        assert_eq!(v["emails"][0]["value"], "Alice@Example.COM");
    }

    #[test]
    fn addresses_and_all_sub_attributes_kept() {
        let address = json!({
            "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA",
            "streetAddress": "100 Universal City Plaza",
            "locality": "Hollywood",
            "region": "CA",
            "postalCode": "91608",
            "country": "USA",
            "type": "work",
            "primary": true
        });
        let v = norm(json!({"userName": "a@b.c", "addresses": [address.clone()]}));
        assert_eq!(v["addresses"], json!([address]));
    }

    // --- userName / active ------------------------------------------------

    #[test]
    fn user_name_required() {
        for body in [
            json!({}),
            json!({"userName": ""}),
            json!({"userName": "   "}),
            json!({"userName": null}),
            json!({"displayName": "x"}),
        ] {
            let e = norm_err(body);
            assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
            assert_eq!(e.detail, "userName is required");
        }
    }

    #[test]
    fn user_name_case_kept_and_defaults_not_stored() {
        let v = norm(json!({"userName": "Alice@Example.COM"}));
        // Neither `active` nor `roles` is injected into the canonical form...
        assert_eq!(v, json!({"userName": "Alice@Example.COM"}));
        assert!(v.get("active").is_none() && v.get("roles").is_none(), "{v}");
        // ...but the member is still active, with role contributor.
        let f = facts(&v);
        assert_eq!(f.user_name, "Alice@Example.COM");
        assert!(f.active);
        assert_eq!(f.role.as_str(), "contributor");
    }

    #[test]
    fn non_object_body_is_invalid_syntax() {
        for body in [json!([]), json!("x"), json!(null), json!(1)] {
            let e = norm_err(body);
            assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
        }
    }

    // --- roles ------------------------------------------------------------

    #[test]
    fn absent_roles_stay_absent_and_role_defaults_to_contributor() {
        for roles in [
            json!(null),
            json!([]),
            json!([{"value": ""}]),
            json!([{"type": "x"}]),
        ] {
            let v = norm(json!({"userName": "a@b.c", "roles": roles}));
            assert!(v.get("roles").is_none(), "{roles} -> {v}");
            assert_eq!(facts(&v).role.as_str(), "contributor", "{roles}");
        }
        let v = norm(json!({"userName": "a@b.c"}));
        assert!(v.get("roles").is_none(), "{v}");
        assert_eq!(facts(&v).role.as_str(), "contributor");
        // An explicit contributor role is stored, normalized like any other.
        let v = norm(json!({"userName": "a@b.c", "roles": [{"value": "Contributor"}]}));
        assert_eq!(v["roles"], contributor_roles());
        assert_eq!(facts(&v).role.as_str(), "contributor");
    }

    #[test]
    fn role_values_lowercased_and_validated() {
        let v = norm(json!({"userName": "a@b.c", "roles": [{"value": "Admin", "primary": true}]}));
        assert_eq!(
            v["roles"],
            json!([{"value": "admin", "type": "role", "primary": true}])
        );
        assert_eq!(facts(&v).role.as_str(), "admin");

        let detail = invalid_value(json!({"userName": "a@b.c", "roles": [{"value": "Owner"}]}));
        assert!(detail.contains("\"Owner\""), "{detail}");
        for r in Role::ALL {
            assert!(detail.contains(r.as_str()), "{detail}");
        }
    }

    #[test]
    fn role_type_kept_or_defaulted() {
        let v = norm(json!({
            "userName": "a@b.c",
            "roles": [{"value": "maker", "type": "WindowsAzureActiveDirectoryRole", "primary": "True", "display": "Maker"}]
        }));
        assert_eq!(
            v["roles"],
            json!([{"value": "maker", "type": "WindowsAzureActiveDirectoryRole", "primary": true, "display": "Maker"}])
        );
        let v = norm(json!({"userName": "a@b.c", "roles": [{"value": "viewer"}]}));
        assert_eq!(
            v["roles"],
            json!([{"value": "viewer", "type": "role", "primary": true}])
        );
        assert_eq!(facts(&v).role.as_str(), "viewer");
    }

    #[test]
    fn role_primary_selection() {
        // The marked one wins, others get primary false.
        let v = norm(json!({"userName": "a@b.c", "roles": [
            {"value": "viewer"}, {"value": "admin", "primary": true}
        ]}));
        assert_eq!(
            v["roles"],
            json!([
                {"value": "viewer", "type": "role", "primary": false},
                {"value": "admin", "type": "role", "primary": true}
            ])
        );
        assert_eq!(facts(&v).role.as_str(), "admin");
        // None marked: the first.
        let v =
            norm(json!({"userName": "a@b.c", "roles": [{"value": "maker"}, {"value": "admin"}]}));
        assert_eq!(
            v["roles"],
            json!([
                {"value": "maker", "type": "role", "primary": true},
                {"value": "admin", "type": "role", "primary": false}
            ])
        );
        assert_eq!(facts(&v).role.as_str(), "maker");
        // A single role object, not in a list.
        let v = norm(json!({"userName": "a@b.c", "roles": {"value": "VIEWER"}}));
        assert_eq!(facts(&v).role.as_str(), "viewer");
        // Roles given as bare strings are the wrong type (objects with a value).
        for roles in [json!("VIEWER"), json!(["maker", "admin"])] {
            let detail = invalid_value(json!({"userName": "a@b.c", "roles": roles}));
            assert!(detail.contains("roles"), "{detail}");
        }
        // Marked false: kept as sent (scim2-tester compares the round trip), and a
        // single entry still counts as the member's role.
        let v = norm(json!({"userName": "a@b.c", "roles": [{"value": "admin", "primary": false}]}));
        assert_eq!(v["roles"][0]["primary"], false);
        assert_eq!(facts(&v).role.as_str(), "admin");
    }

    #[test]
    fn identifiers_must_be_strings() {
        for body in [
            json!({"userName": 12}),
            json!({"userName": true}),
            json!({"userName": "a@b.c", "emails": [1, 2]}),
            json!({"userName": "a@b.c", "emails": [{"value": 3}]}),
        ] {
            let err = normalize_user(&body).unwrap_err();
            assert_eq!(err.scim_type, Some(ScimType::InvalidValue), "{body}");
        }
    }

    #[test]
    fn more_than_one_primary_rejected() {
        let detail = invalid_value(json!({"userName": "a@b.c", "roles": [
            {"value": "admin", "primary": true}, {"value": "viewer", "primary": "True"}
        ]}));
        assert!(detail.contains("roles"), "{detail}");
        let detail = invalid_value(json!({"userName": "a@b.c", "emails": [
            {"value": "a@b.c", "primary": true}, {"value": "b@b.c", "primary": true}
        ]}));
        assert!(detail.contains("emails"), "{detail}");
    }

    // --- manager ----------------------------------------------------------

    #[test]
    fn manager_shapes() {
        let expect = json!({"manager": {"value": "m-1"}});
        for manager in [
            json!({"value": "m-1"}),
            json!([{"value": "m-1"}]),
            json!([{"value": "m-1"}, {"value": "m-2"}]),
            json!({"value": "m-1", "displayName": "Boss"}),
            json!({"Value": "m-1", "DISPLAYNAME": "Boss"}),
        ] {
            let v = norm(json!({"userName": "a@b.c", ENT: {"manager": manager}}));
            assert_eq!(v[ENT], expect, "{manager}");
        }
        let v = norm(
            json!({"userName": "a@b.c", ENT: {"manager": {"value": "m", "$ref": "../Users/m"}}}),
        );
        assert_eq!(
            v[ENT]["manager"],
            json!({"value": "m", "$ref": "../Users/m"})
        );
        for absent in [
            json!({"displayName": "Boss"}),
            json!([]),
            json!(null),
            json!(""),
        ] {
            let v = norm(json!({"userName": "a@b.c", ENT: {"manager": absent}}));
            assert!(v.get(ENT).is_none(), "{absent} -> {v}");
        }
        // A bare id, or a list of them, is not an object.
        for bad in [json!("m-1"), json!(["m-1"]), json!(7), json!({"value": 7})] {
            let detail = invalid_value(json!({"userName": "a@b.c", ENT: {"manager": bad}}));
            assert!(detail.contains("manager"), "{detail}");
        }
        // manager.displayName as a dotted key is read-only too.
        let v = norm(
            json!({"userName": "a@b.c", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName": "B"}),
        );
        assert!(v.get(ENT).is_none(), "{v}");
    }

    // --- emails and facts -------------------------------------------------

    #[test]
    fn facts_of_full_user() {
        let v = norm(json!({
            "userName": "Alice@Example.com",
            "externalId": "ext-9",
            "active": "False",
            "displayName": "Alice",
            "name": {"givenName": "Alice", "familyName": "Liddell"},
            "emails": [{"value": " Alice@Example.COM ", "primary": true}, {"value": "ALICE@Other.org"}],
            "roles": [{"value": "Maker", "primary": "true"}]
        }));
        assert_eq!(v["emails"][0]["value"], "Alice@Example.COM");
        assert_eq!(
            facts(&v),
            UserFacts {
                user_name: "Alice@Example.com".into(),
                external_id: Some("ext-9".into()),
                active: false,
                role: Role::Maker,
                display_name: Some("Alice".into()),
                given_name: Some("Alice".into()),
                family_name: Some("Liddell".into()),
                emails: vec!["alice@example.com".into(), "alice@other.org".into()],
            }
        );
    }

    #[test]
    fn facts_of_minimal_user() {
        let f = facts(&norm(json!({"userName": "u"})));
        assert_eq!(
            f,
            UserFacts {
                user_name: "u".into(),
                external_id: None,
                active: true,
                role: Role::Contributor,
                display_name: None,
                given_name: None,
                family_name: None,
                emails: vec![],
            }
        );
    }

    // --- interop bodies ---------------------------------------------------

    #[test]
    fn okta_create_body() {
        let v = norm(okta_create());
        assert_eq!(
            v,
            json!({
                "userName": "test.user@okta.local",
                "name": {"givenName": "Test", "familyName": "User"},
                "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
                "displayName": "Test User",
                "locale": "en-US",
                "externalId": "00ujl29u0le5T6Aj10h7",
                "active": true
            })
        );
        let f = facts(&v);
        assert_eq!(f.external_id.as_deref(), Some("00ujl29u0le5T6Aj10h7"));
        assert_eq!(f.emails, vec!["test.user@okta.local".to_owned()]);
        assert_eq!(f.role.as_str(), "contributor");
    }

    #[test]
    fn entra_create_body() {
        let v = norm(entra_create());
        assert_eq!(
            v,
            json!({
                "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
                "userName": "Test_User_ab6490ee@testuser.com",
                "active": true,
                "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
                "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
                ENT: {
                    "employeeNumber": "1234",
                    "department": "Sales",
                    "manager": {"value": "0192f0e4-2222-7000-8000-000000000002"}
                }
            })
        );
        // "roles": [] is absent, so the member gets the default role.
        assert_eq!(facts(&v).role.as_str(), "contributor");
    }

    #[test]
    fn entra_string_booleans_and_capitalised_names() {
        let v = norm(json!({
            "UserName": "e@x.io",
            "Active": "False",
            "emails": [{"type": "work", "value": "e@x.io", "primary": "true"}],
            "roles": [{"primary": "True", "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}]
        }));
        assert_eq!(v["active"], false);
        assert_eq!(v["emails"][0]["primary"], true);
        assert_eq!(facts(&v).role.as_str(), "admin");
    }

    #[test]
    fn okta_get_then_put_round_trip() {
        let stored = norm(okta_create());
        let rendered = render_user(&stored, &meta());
        // Okta PUTs back what it got, possibly with a changed attribute.
        let mut put = rendered.clone();
        put["active"] = json!(false);
        let updated = norm(put);
        let mut expect = stored.clone();
        expect["active"] = json!(false);
        expect["roles"] = contributor_roles();
        assert_eq!(updated, expect);
        // Unchanged PUT: identical canonical form, but for the effective role, which
        // the client now sends back.
        let mut with_role = stored.clone();
        with_role["roles"] = contributor_roles();
        assert_eq!(norm(rendered), with_role);
    }

    #[test]
    fn render_then_normalize_is_fixed_point() {
        for body in [okta_create(), entra_create(), json!({"userName": "x"})] {
            // Once the effective role came back, rendering and normalising again
            // changes nothing.
            let c = norm(render_user(&norm(body), &meta()));
            assert_eq!(norm(render_user(&c, &meta())), c);
            assert_eq!(norm(c.clone()), c);
        }
    }

    // --- rendering --------------------------------------------------------

    #[test]
    fn render_user_exact() {
        let c = norm(json!({"userName": "a@b.c", "externalId": "e1"}));
        assert_eq!(
            render_user(&c, &meta()),
            json!({
                "schemas": [USER_SCHEMA],
                "id": "0192f0e4-1111-7000-8000-000000000001",
                "userName": "a@b.c",
                "externalId": "e1",
                "roles": [{"value": "contributor", "type": "role", "primary": true}],
                "groups": [],
                "meta": {
                    "resourceType": "User",
                    "created": "2026-11-22T10:49:21.123Z",
                    "lastModified": "2026-11-22T10:49:21.500Z",
                    "location": "http://localhost:8080/scim/v2/Users/0192f0e4-1111-7000-8000-000000000001",
                    "version": "W/\"7\""
                }
            })
        );
    }

    #[test]
    fn render_user_lists_enterprise_schema_when_present() {
        let c = norm(entra_create());
        let r = render_user(&c, &meta());
        assert_eq!(r["schemas"], json!([USER_SCHEMA, ENT]));
        assert_eq!(r[ENT]["department"], "Sales");
        assert!(r.get("password").is_none());
    }

    #[test]
    fn etag_and_datetime_format() {
        assert_eq!(etag(1), "W/\"1\"");
        assert_eq!(etag(1234567890123), "W/\"1234567890123\"");
        assert_eq!(
            format_datetime(datetime!(2026-01-02 03:04:05 UTC)),
            "2026-01-02T03:04:05.000Z"
        );
        assert_eq!(
            format_datetime(datetime!(2026-01-02 00:30:00.999999 -01:00)),
            "2026-01-02T01:30:00.999Z"
        );
    }

    // --- projection -------------------------------------------------------

    fn rendered_full() -> Value {
        let c = norm(json!({
            "userName": "a@b.c",
            "displayName": "A",
            "name": {"givenName": "G", "familyName": "F"},
            "emails": [{"value": "a@b.c", "type": "work", "primary": true}, {"value": "b@b.c", "type": "home"}],
            ENT: {"department": "Sales", "manager": {"value": "m"}}
        }));
        render_user(&c, &meta())
    }

    fn project(attributes: Option<&str>, excluded: Option<&str>) -> Value {
        Projection::parse(attributes, excluded)
            .unwrap()
            .apply(rendered_full())
    }

    #[test]
    fn projection_identity() {
        for (a, e) in [
            (None, None),
            (Some(""), Some("  ")),
            (None, Some("id")),
            (None, Some("schemas, bogus")),
        ] {
            let p = Projection::parse(a, e).unwrap();
            assert!(p.is_identity(), "{a:?} {e:?}");
            assert_eq!(p.apply(rendered_full()), rendered_full());
        }
        assert!(
            !Projection::parse(Some("userName"), None)
                .unwrap()
                .is_identity()
        );
        assert!(
            !Projection::parse(None, Some("emails"))
                .unwrap()
                .is_identity()
        );
    }

    #[test]
    fn attributes_selects_plus_always_returned() {
        assert_eq!(
            project(Some("userName"), None),
            json!({"id": meta().id, "schemas": [USER_SCHEMA], "userName": "a@b.c"})
        );
        assert_eq!(
            project(
                Some("USERNAME, name.givenName,bogus,emails[type eq \"work\"]"),
                None
            ),
            json!({
                "id": meta().id,
                "schemas": [USER_SCHEMA],
                "userName": "a@b.c",
                "name": {"givenName": "G"}
            })
        );
        assert_eq!(
            project(Some("emails.value,emails.type"), None)["emails"],
            json!([{"value": "a@b.c", "type": "work"}, {"value": "b@b.c", "type": "home"}])
        );
        assert_eq!(
            project(Some("emails.display"), None),
            json!({"id": meta().id, "schemas": [USER_SCHEMA]})
        );
    }

    #[test]
    fn attributes_meta_only_when_requested() {
        assert!(project(Some("userName"), None).get("meta").is_none());
        let p = project(Some("meta.lastModified"), None);
        assert_eq!(
            p["meta"],
            json!({"lastModified": "2026-11-22T10:49:21.500Z"})
        );
        let p = project(Some("meta,name"), None);
        assert_eq!(p["meta"]["version"], "W/\"7\"");
        assert_eq!(p["name"], json!({"givenName": "G", "familyName": "F"}));
    }

    #[test]
    fn attributes_enterprise_paths() {
        let p = project(
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
            None,
        );
        assert_eq!(
            p,
            json!({"id": meta().id, "schemas": [USER_SCHEMA, ENT], ENT: {"manager": {"value": "m"}}})
        );
        let p = project(
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user"),
            None,
        );
        assert_eq!(
            p[ENT],
            json!({"department": "Sales", "manager": {"value": "m"}})
        );
        assert_eq!(p["schemas"], json!([USER_SCHEMA, ENT]));
        // Enterprise data not selected: its schema is not listed.
        assert_eq!(
            project(Some("userName"), None)["schemas"],
            json!([USER_SCHEMA])
        );
        // The core URN selects every core attribute.
        let p = project(Some(USER_SCHEMA), None);
        assert_eq!(p["userName"], "a@b.c");
        assert_eq!(p["emails"].as_array().unwrap().len(), 2);
        assert!(p.get(ENT).is_none());
        assert!(p.get("meta").is_none());
    }

    #[test]
    fn excluded_attributes() {
        let full = rendered_full();
        let p = project(None, Some("emails, NAME.givenName,id,schemas"));
        let mut expect = full.clone();
        expect.as_object_mut().unwrap().remove("emails");
        expect["name"] = json!({"familyName": "F"});
        assert_eq!(p, expect);

        let p = project(None, Some("emails.type"));
        assert_eq!(
            p["emails"],
            json!([{"value": "a@b.c", "primary": true}, {"value": "b@b.c"}])
        );

        let p = project(None, Some("name.givenName,name.familyName"));
        assert!(p.get("name").is_none(), "{p}");

        let p = project(
            None,
            Some(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            ),
        );
        assert!(p.get(ENT).is_none(), "{p}");
        assert_eq!(p["schemas"], json!([USER_SCHEMA]));

        let p = project(None, Some("meta,groups"));
        assert!(p.get("meta").is_none() && p.get("groups").is_none());
        assert_eq!(p["id"], meta().id);
    }

    #[test]
    fn attributes_and_excluded_together() {
        let p = project(Some("name,emails"), Some("name.familyName,emails.primary"));
        assert_eq!(
            p,
            json!({
                "id": meta().id,
                "schemas": [USER_SCHEMA],
                "name": {"givenName": "G"},
                "emails": [{"value": "a@b.c", "type": "work"}, {"value": "b@b.c", "type": "home"}]
            })
        );
    }

    // --- protocol documents -----------------------------------------------

    #[test]
    fn list_response_shape() {
        assert_eq!(
            list_response(vec![], 0, 1),
            json!({
                "schemas": [LIST_RESPONSE_SCHEMA],
                "totalResults": 0,
                "startIndex": 1,
                "itemsPerPage": 0,
                "Resources": []
            })
        );
        let r = list_response(vec![json!({"id": "a"}), json!({"id": "b"})], 250, 101);
        assert_eq!(r["totalResults"], json!(250u64));
        assert!(r["totalResults"].is_u64());
        assert_eq!(r["startIndex"], json!(101u64));
        assert_eq!(r["itemsPerPage"], json!(2u64));
        assert_eq!(r["Resources"], json!([{"id": "a"}, {"id": "b"}]));
    }

    #[test]
    fn service_provider_config_shape() {
        let v = service_provider_config("http://localhost:8080/scim/v2", 200);
        assert_eq!(v["schemas"], json!([SERVICE_PROVIDER_CONFIG_SCHEMA]));
        assert_eq!(v["patch"], json!({"supported": true}));
        assert_eq!(v["bulk"]["supported"], false);
        assert_eq!(v["filter"], json!({"supported": true, "maxResults": 200}));
        assert_eq!(v["changePassword"], json!({"supported": false}));
        assert_eq!(v["sort"], json!({"supported": true}));
        assert_eq!(v["etag"], json!({"supported": true}));
        assert_eq!(v["authenticationSchemes"][0]["type"], "oauthbearertoken");
        assert_eq!(v["authenticationSchemes"].as_array().unwrap().len(), 1);
        assert_eq!(
            v["meta"],
            json!({
                "resourceType": "ServiceProviderConfig",
                "location": "http://localhost:8080/scim/v2/ServiceProviderConfig"
            })
        );
    }

    #[test]
    fn resource_types_shape() {
        let v = resource_types("https://x.io/scim/v2/");
        assert_eq!(v[1]["endpoint"], "/Groups");
        assert_eq!(v[1]["schema"], schema::GROUP_SCHEMA);
        assert_eq!(
            v[1]["meta"]["location"],
            "https://x.io/scim/v2/ResourceTypes/Group"
        );
        assert_eq!(
            v[..1],
            vec![json!({
                "schemas": [RESOURCE_TYPE_SCHEMA],
                "id": "User",
                "name": "User",
                "endpoint": "/Users",
                "description": "User Account",
                "schema": USER_SCHEMA,
                "schemaExtensions": [{"schema": ENT, "required": false}],
                "meta": {
                    "resourceType": "ResourceType",
                    "location": "https://x.io/scim/v2/ResourceTypes/User"
                }
            })]
        );
    }

    // --- properties -------------------------------------------------------

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-5i64..100000).prop_map(Value::from),
            prop::sample::select(vec![
                "",
                " ",
                "x",
                " Padded ",
                "True",
                "false",
                "FALSE",
                "admin",
                "Viewer",
                "maker",
                "a@b.c",
                "Ünïcode",
                "work",
            ])
            .prop_map(Value::from),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "value",
            "VALUE",
            "type",
            "primary",
            "Primary",
            "display",
            "givenName",
            "familyName",
            "displayName",
            "department",
            "manager",
            "formatted",
            "bogus",
        ]);
        leaf().prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..4).prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }

    fn body() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "displayName",
            "DisplayName",
            "active",
            "Active",
            "name",
            "name.givenName",
            "NAME.familyName",
            "emails",
            "phoneNumbers",
            "roles",
            "Roles",
            "externalId",
            "title",
            "password",
            "id",
            "meta",
            "groups",
            "schemas",
            "entitlements",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "urn:ietf:params:scim:schemas:core:2.0:User:nickName",
        ]);
        (
            prop::sample::select(vec!["a@b.c", " Mixed@Case.IO ", "u"]),
            prop::collection::vec((keys, json_value()), 0..8),
        )
            .prop_map(|(user_name, attrs)| {
                let mut m = Map::new();
                m.insert("userName".to_owned(), Value::from(user_name));
                for (k, v) in attrs {
                    m.insert(k.to_owned(), v);
                }
                Value::Object(m)
            })
    }

    fn assert_canonical(v: &Value) {
        let m = v.as_object().unwrap();
        for banned in ["id", "meta", "schemas", "password", "groups"] {
            assert!(!m.contains_key(banned), "{banned} in {v}");
        }
        fn no_empties(v: &Value) {
            match v {
                Value::Null => panic!("null stored"),
                Value::String(s) => assert!(!s.is_empty() && s.trim() == s),
                Value::Array(a) => {
                    assert!(!a.is_empty());
                    a.iter().for_each(no_empties);
                }
                Value::Object(o) => {
                    assert!(!o.is_empty());
                    o.values().for_each(no_empties);
                }
                _ => {}
            }
        }
        no_empties(v);
        // `roles` and `active` may be absent (nothing is injected); when present they are
        // normalized: exactly one primary role, each with a type and a known value.
        if let Some(roles) = m.get("roles") {
            let roles = roles.as_array().unwrap();
            assert_eq!(roles.iter().filter(|r| r["primary"] == true).count(), 1);
            assert!(roles.iter().all(
                |r| r["type"].is_string() && Role::ALL.iter().any(|x| r["value"] == x.as_str())
            ));
        }
        if let Some(active) = m.get("active") {
            assert!(active.is_boolean(), "{v}");
        }
    }

    proptest! {
        #[test]
        fn normalize_is_idempotent_and_render_round_trips(b in body()) {
            if let Ok(c) = normalize_user(&b) {
                assert_canonical(&c);
                prop_assert_eq!(&normalize_user(&c).unwrap(), &c);
                let round = normalize_user(&render_user(&c, &meta())).unwrap();
                if c.get("roles").is_some() {
                    prop_assert_eq!(&round, &c);
                } else {
                    // The effective role comes back; nothing else changes.
                    let mut with_role = c.clone();
                    with_role["roles"] = contributor_roles();
                    prop_assert_eq!(&round, &with_role);
                }
                prop_assert_eq!(facts(&round), facts(&c));
                let f = facts(&c);
                prop_assert_eq!(f.user_name.as_str(), c["userName"].as_str().unwrap());
                let roles = c.get("roles").and_then(Value::as_array).cloned().unwrap_or_default();
                let counted = roles.iter().find(|e| is_primary(e)).or_else(|| roles.first());
                prop_assert_eq!(
                    counted.and_then(|e| e["value"].as_str()).unwrap_or(DEFAULT_ROLE.as_str()),
                    f.role.as_str()
                );
                if c.get("active").is_none() {
                    prop_assert!(f.active);
                }
                if c.get("roles").is_none() {
                    prop_assert_eq!(f.role, DEFAULT_ROLE);
                }
            }
        }

        #[test]
        fn projection_never_drops_id_or_schemas(
            a in prop::option::of(prop::sample::select(vec!["userName", "id", "emails.value", "meta", "bogus", ""])),
            e in prop::option::of(prop::sample::select(vec!["id", "schemas", "userName", "emails", "name.givenName"])),
        ) {
            let p = Projection::parse(a, e).unwrap().apply(rendered_full());
            prop_assert_eq!(&p["id"], &json!(meta().id));
            prop_assert!(p["schemas"].is_array());
        }
    }
}
