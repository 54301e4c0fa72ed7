//! SCIM Groups (RFC 7643 §4.2): a workspace's teams. Reading Group bodies and
//! PatchOp requests into what to change, and rendering Groups. Pure: member ids are
//! checked against the workspace by the caller.
//!
//! PATCH accepts every shape Okta and Entra ID send (see docs/interop notes in the
//! tests): `add` of `members` (with a path, or pathless with `{"members": [...]}`),
//! `remove` with `members[value eq "id"]`, `remove` of `members` with a value list
//! (Entra's older shape: removes only those listed) or without (removes all),
//! `replace` of `members` (the whole list) or `displayName` (with a path, or
//! pathless, where Okta also sends the Group's `id`), op names in any case.
//! `members` is always a list of objects with a `value` (RFC 7643 §4.2).

use super::error::ScimError;
use super::filter::{self, CompValue, CompareOp, Filter};
use super::patch::{self, OpKind};
use super::resource::{etag, format_datetime};
use super::schema::{self, GROUP_SCHEMA};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

/// Longest team name, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Most operations in one Group PATCH (each may list any number of members).
pub const MAX_OPS: usize = 1000;

/// A Group body of a POST or PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInput {
    pub display_name: String,
    pub external_id: Option<String>,
    /// In the order sent, duplicates removed.
    pub members: Vec<Uuid>,
}

/// A change to a Group's members, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembersOp {
    Add(Vec<Uuid>),
    Remove(Vec<Uuid>),
    RemoveAll,
}

/// What a PatchOp request changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPatch {
    pub display_name: Option<String>,
    /// `Some(None)` removes it.
    pub external_id: Option<Option<String>>,
    pub members: Vec<MembersOp>,
}

impl GroupPatch {
    /// Every member id named by an add or a remove, in request order.
    pub fn named_members(&self) -> impl Iterator<Item = &Uuid> {
        self.members.iter().flat_map(|op| match op {
            MembersOp::Add(ids) | MembersOp::Remove(ids) => ids.as_slice(),
            MembersOp::RemoveAll => &[],
        })
    }
}

fn get_ci<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    patch::get_ci_map(map, key)
}

/// An attribute name as a Group body or pathless PATCH value writes it, without the
/// Group schema URN.
fn bare(key: &str) -> &str {
    match key.get(..GROUP_SCHEMA.len()) {
        Some(head) if head.eq_ignore_ascii_case(GROUP_SCHEMA) => {
            key[GROUP_SCHEMA.len()..].strip_prefix(':').unwrap_or(key)
        }
        _ => key,
    }
}

fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// A team name: a non-blank string of at most [`MAX_NAME_CHARS`] characters.
pub fn display_name(v: &Value) -> Result<String, ScimError> {
    let Value::String(s) = v else {
        return Err(ScimError::invalid_value(format!(
            "displayName must be a string, not {}",
            schema::json_kind(v)
        )));
    };
    check_name(s).map_err(ScimError::invalid_value)?;
    Ok(s.clone())
}

/// The rules for a team name, on the pages as in SCIM.
pub fn check_name(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("displayName must not be empty".into());
    }
    if has_nul(s) || s.chars().any(char::is_control) {
        return Err("displayName must not contain control characters".into());
    }
    if s.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "displayName is limited to {MAX_NAME_CHARS} characters"
        ));
    }
    Ok(())
}

fn external_id(v: &Value) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) if has_nul(s) || s.len() > 1024 => Err(ScimError::invalid_value(
            "externalId must be at most 1024 bytes without NUL characters",
        )),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(ScimError::invalid_value(format!(
            "externalId must be a string, not {}",
            schema::json_kind(other)
        ))),
    }
}

/// A member id as a Group names it: a User's id. Anything else cannot be a member
/// of the workspace: `400 invalidValue` (never 404, which would read as "this Group
/// is gone").
fn member_id(raw: &str) -> Result<Uuid, ScimError> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        ScimError::invalid_value(format!(
            "members: '{}' is not the id of a member of this workspace",
            raw.chars().take(80).collect::<String>()
        ))
    })
}

/// One `members` entry: `{"value": "<id>"}` (with optional `display`, `$ref`, and
/// `type` "User").
fn member_ref(entry: &Value) -> Result<Uuid, ScimError> {
    let Value::Object(m) = entry else {
        return Err(ScimError::invalid_value(format!(
            "members: each entry must be an object like {{\"value\": \"<id>\"}}, not {}",
            schema::json_kind(entry)
        )));
    };
    if let Some(t) = get_ci(m, "type")
        && !t.is_null()
        && !t.as_str().is_some_and(|t| t.eq_ignore_ascii_case("User"))
    {
        return Err(ScimError::invalid_value(
            "members: only Users can be members of a Group (groups are not nested)",
        ));
    }
    match get_ci(m, "value") {
        Some(Value::String(s)) => member_id(s),
        Some(other) => Err(ScimError::invalid_value(format!(
            "members: 'value' must be a string, not {}",
            schema::json_kind(other)
        ))),
        None => Err(ScimError::invalid_value(
            "members: each entry needs a 'value' (a User's id)",
        )),
    }
}

/// A `members` value: a list of entries, duplicates removed, order kept.
fn member_list(v: &Value) -> Result<Vec<Uuid>, ScimError> {
    let entries: &[Value] = match v {
        Value::Array(items) => items,
        Value::Null => &[],
        other => {
            return Err(ScimError::invalid_value(format!(
                "members must be a list, not {}",
                schema::json_kind(other)
            )));
        }
    };
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let id = member_ref(e)?;
        if seen.insert(id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Read a Group body (POST, PUT). `id`, `meta`, `schemas` and unknown attributes
/// are ignored, as for Users.
pub fn parse_group(body: &Value) -> Result<GroupInput, ScimError> {
    let Value::Object(obj) = body else {
        return Err(ScimError::invalid_syntax(
            "the Group resource must be a JSON object",
        ));
    };
    let mut name = None;
    let mut external = None;
    let mut members = Vec::new();
    for (key, value) in obj {
        match bare(key) {
            k if k.eq_ignore_ascii_case("displayName") => name = Some(display_name(value)?),
            k if k.eq_ignore_ascii_case("externalId") => external = external_id(value)?,
            k if k.eq_ignore_ascii_case("members") => members = member_list(value)?,
            _ => {}
        }
    }
    let Some(display_name) = name else {
        return Err(ScimError::invalid_value("displayName is required"));
    };
    Ok(GroupInput {
        display_name,
        external_id: external,
        members,
    })
}

/// Read a PatchOp request on a Group. All or nothing: any bad operation refuses
/// the whole request.
pub fn parse_patch(body: &Value) -> Result<GroupPatch, ScimError> {
    let ops = patch::operations(body)?;
    if ops.len() > MAX_OPS {
        return Err(ScimError::invalid_value(format!(
            "at most {MAX_OPS} operations in one PATCH ({} sent); list several members in one operation",
            ops.len()
        )));
    }
    let mut out = GroupPatch::default();
    for (i, op) in ops.iter().enumerate() {
        parse_op(op, &mut out).map_err(|e| patch::prefixed(&format!("Operations[{i}]"), e))?;
    }
    Ok(out)
}

fn parse_op(op: &Value, out: &mut GroupPatch) -> Result<(), ScimError> {
    let Value::Object(op) = op else {
        return Err(ScimError::invalid_syntax(
            "an operation must be a JSON object",
        ));
    };
    let kind = match get_ci(op, "op") {
        Some(Value::String(name)) => OpKind::parse(name).ok_or_else(|| {
            ScimError::invalid_syntax(format!(
                "unknown op '{}' (expected add, replace or remove)",
                name.chars().take(40).collect::<String>()
            ))
        })?,
        Some(_) => return Err(ScimError::invalid_syntax("'op' must be a string")),
        None => return Err(ScimError::invalid_syntax("missing 'op'")),
    };
    let path = match get_ci(op, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => Some(p.trim()),
        Some(_) => return Err(ScimError::invalid_path("'path' must be a string")),
    };
    let value = get_ci(op, "value");
    if kind != OpKind::Remove && value.is_none() {
        return Err(ScimError::invalid_value(format!(
            "'{kind}' needs a 'value'"
        )));
    }
    match path {
        None => pathless(kind, value, out),
        Some(path) => with_path(kind, path, value, out),
    }
}

/// `{"op": "add"|"replace", "value": {"displayName": .., "members": [..], ..}}`.
fn pathless(kind: OpKind, value: Option<&Value>, out: &mut GroupPatch) -> Result<(), ScimError> {
    if kind == OpKind::Remove {
        return Err(ScimError::no_target("'remove' needs a 'path'"));
    }
    let Some(Value::Object(attrs)) = value else {
        return Err(ScimError::invalid_value(format!(
            "'{kind}' without a 'path' needs an object of attributes as 'value'"
        )));
    };
    for (key, v) in attrs {
        let key = bare(key);
        if key.eq_ignore_ascii_case("displayName") {
            out.display_name = Some(display_name(v)?);
        } else if key.eq_ignore_ascii_case("externalId") {
            out.external_id = Some(external_id(v)?);
        } else if key.eq_ignore_ascii_case("members") {
            let ids = member_list(v)?;
            if kind == OpKind::Replace {
                out.members.push(MembersOp::RemoveAll);
            }
            out.members.push(MembersOp::Add(ids));
        }
        // `id` (Okta sends the Group's own), `schemas`, `meta` and unknown
        // attributes are ignored, as in a PUT.
    }
    Ok(())
}

fn with_path(
    kind: OpKind,
    path: &str,
    value: Option<&Value>,
    out: &mut GroupPatch,
) -> Result<(), ScimError> {
    if path.len() > patch::MAX_PATH_LEN {
        return Err(ScimError::invalid_path("the path is too long"));
    }
    let path = bare(path);
    let (head, bracket) = match path.find('[') {
        Some(i) => (&path[..i], Some(&path[i..])),
        None => (path, None),
    };
    let Some(attr) = schema::resolve_group(head.trim()) else {
        return Err(ScimError::invalid_path(format!(
            "'{}' is not an attribute of a Group (displayName, externalId, members)",
            path.chars().take(80).collect::<String>()
        )));
    };
    let sub = attr.sub.map(|s| s.name);
    match (attr.attr.name, sub, bracket) {
        ("members", None, Some(bracket)) => {
            let (filter, rest) = filter::parse_bracket_filter(attr, bracket)?;
            if !rest.trim().is_empty() {
                return Err(ScimError::invalid_path(
                    "only whole members can be changed: nothing may follow ']'",
                ));
            }
            if kind != OpKind::Remove {
                return Err(ScimError::invalid_path(
                    "members[...] can only be removed; add members with {\"op\":\"add\",\"path\":\"members\",\"value\":[...]}",
                ));
            }
            let mut ids = Vec::new();
            ids_of(&filter, &mut ids)?;
            out.members.push(MembersOp::Remove(ids));
            Ok(())
        }
        (_, _, Some(_)) => Err(ScimError::invalid_path(
            "a '[...]' filter is only allowed on members",
        )),
        ("members", None, None) => {
            match (kind, value) {
                (OpKind::Add, Some(v)) => out.members.push(MembersOp::Add(member_list(v)?)),
                (OpKind::Replace, Some(v)) => {
                    let ids = member_list(v)?;
                    out.members.push(MembersOp::RemoveAll);
                    out.members.push(MembersOp::Add(ids));
                }
                // Entra's older shape: remove only the members listed (none listed:
                // none removed, never all of them).
                (OpKind::Remove, Some(v)) if !v.is_null() => {
                    out.members.push(MembersOp::Remove(member_list(v)?))
                }
                // No value (or null, which RFC 7643 reads as no value): every member.
                (OpKind::Remove, _) => out.members.push(MembersOp::RemoveAll),
                (_, None) => return Err(ScimError::invalid_value("a 'value' is needed")),
            }
            Ok(())
        }
        ("displayName", None, None) => match (kind, value) {
            (OpKind::Remove, _) => Err(ScimError::mutability(
                "displayName is required and cannot be removed",
            )),
            (_, Some(v)) => {
                out.display_name = Some(display_name(v)?);
                Ok(())
            }
            (_, None) => Err(ScimError::invalid_value("a 'value' is needed")),
        },
        ("externalId", None, None) => {
            out.external_id = Some(match (kind, value) {
                (OpKind::Remove, _) => None,
                (_, Some(v)) => external_id(v)?,
                (_, None) => None,
            });
            Ok(())
        }
        ("id" | "meta", _, _) => Err(ScimError::mutability(format!(
            "'{}' is readOnly",
            attr.json_path().join(".")
        ))),
        _ => Err(ScimError::invalid_path(format!(
            "'{}' cannot be changed by itself: change whole members",
            attr.json_path().join(".")
        ))),
    }
}

/// The member ids a `members[...]` filter selects: `value eq "<id>"`, or several
/// of those joined by `or`.
fn ids_of(f: &Filter, out: &mut Vec<Uuid>) -> Result<(), ScimError> {
    match f {
        Filter::Compare {
            attr,
            op: CompareOp::Eq,
            value: CompValue::Str(s),
        } if attr.sub.is_some_and(|s| s.name == "value") => {
            out.push(member_id(s)?);
            Ok(())
        }
        Filter::Or(a, b) => {
            ids_of(a, out)?;
            ids_of(b, out)
        }
        _ => Err(ScimError::invalid_filter(
            "select members to remove by id: members[value eq \"<id>\"] (several joined by 'or')",
        )),
    }
}

/// The server-side facts of a Group, for rendering.
#[derive(Debug, Clone, Copy)]
pub struct GroupView<'a> {
    pub id: &'a str,
    pub display_name: &'a str,
    pub external_id: Option<&'a str>,
    pub created: OffsetDateTime,
    pub last_modified: OffsetDateTime,
    pub version: i64,
    /// The SCIM base URL, like "http://localhost:8080/scim/v2".
    pub base: &'a str,
}

/// The Group without its `members` (they are added, or streamed, by the caller).
pub fn render_head(g: &GroupView<'_>) -> Value {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([GROUP_SCHEMA]));
    out.insert("id".into(), Value::from(g.id));
    out.insert("displayName".into(), Value::from(g.display_name));
    if let Some(e) = g.external_id {
        out.insert("externalId".into(), Value::from(e));
    }
    out.insert(
        "meta".into(),
        json!({
            "resourceType": "Group",
            "created": format_datetime(g.created),
            "lastModified": format_datetime(g.last_modified),
            "location": format!("{}/Groups/{}", g.base, g.id),
            "version": etag(g.version),
        }),
    );
    Value::Object(out)
}

/// One `members` entry: the User's id, its displayName (else userName), `$ref`, type.
pub fn member_entry(base: &str, id: &str, display: &str) -> Value {
    json!({
        "value": id,
        "display": display,
        "$ref": format!("{base}/Users/{id}"),
        "type": "User",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::error::ScimType;

    const A: &str = "0192f0e4-1111-7000-8000-00000000000a";
    const B: &str = "0192f0e4-1111-7000-8000-00000000000b";

    fn id(s: &str) -> Uuid {
        Uuid::parse_str(s).unwrap()
    }

    fn patch_of(ops: Value) -> Result<GroupPatch, ScimError> {
        parse_patch(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": ops,
        }))
    }

    #[test]
    fn okta_push_groups_shapes() {
        let created = parse_group(&json!({
            "schemas": [GROUP_SCHEMA], "displayName": "Engineering", "members": []
        }))
        .unwrap();
        assert_eq!(created.display_name, "Engineering");
        assert!(created.members.is_empty());
        // Rename, with the Group's own id in the value.
        let p =
            patch_of(json!([{"op": "replace", "value": {"id": A, "displayName": "Eng"}}])).unwrap();
        assert_eq!(p.display_name.as_deref(), Some("Eng"));
        assert!(p.members.is_empty());
        let p = patch_of(json!([{"op": "add", "path": "members", "value": [{"value": A}, {"value": B, "display": "b"}]}])).unwrap();
        assert_eq!(p.members, [MembersOp::Add(vec![id(A), id(B)])]);
        let p = patch_of(json!([{"op": "remove", "path": format!("members[value eq \"{A}\"]")}]))
            .unwrap();
        assert_eq!(p.members, [MembersOp::Remove(vec![id(A)])]);
        let p = patch_of(json!([{"op": "replace", "path": "members", "value": [{"value": B}]}]))
            .unwrap();
        assert_eq!(
            p.members,
            [MembersOp::RemoveAll, MembersOp::Add(vec![id(B)])]
        );
    }

    #[test]
    fn entra_shapes() {
        let p = patch_of(json!([
            {"op": "Add", "path": "members", "value": [{"value": A}, {"value": B}]},
            {"op": "Replace", "path": "displayName", "value": "Sales"},
        ]))
        .unwrap();
        assert_eq!(p.members, [MembersOp::Add(vec![id(A), id(B)])]);
        assert_eq!(p.display_name.as_deref(), Some("Sales"));
        // The older Remove shape removes only the listed members.
        let p = patch_of(json!([{"op": "Remove", "path": "members", "value": [{"value": A}]}]))
            .unwrap();
        assert_eq!(p.members, [MembersOp::Remove(vec![id(A)])]);
        let p = patch_of(json!([{"op": "remove", "path": "members"}])).unwrap();
        assert_eq!(p.members, [MembersOp::RemoveAll]);
        // An empty list removes nobody (a client that found none to remove).
        let p = patch_of(json!([{"op": "Remove", "path": "members", "value": []}])).unwrap();
        assert_eq!(p.members, [MembersOp::Remove(vec![])]);
        let p = patch_of(json!([{"op": "add", "value": {"members": [{"value": A}]}}])).unwrap();
        assert_eq!(p.members, [MembersOp::Add(vec![id(A)])]);
        let p = patch_of(json!([{"op": "remove", "path": format!("members[value eq \"{A}\" or value eq \"{B}\"]")}])).unwrap();
        assert_eq!(p.members, [MembersOp::Remove(vec![id(A), id(B)])]);
        let p = patch_of(json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:externalId", "value": "x"}])).unwrap();
        assert_eq!(p.external_id, Some(Some("x".into())));
    }

    #[test]
    fn bad_requests_are_4xx_with_their_kind() {
        let kind = |ops: Value| patch_of(ops).unwrap_err().scim_type;
        assert_eq!(
            kind(json!([{"op": "add", "path": "members", "value": [{"value": "not-an-id"}]}])),
            Some(ScimType::InvalidValue)
        );
        assert_eq!(
            kind(
                json!([{"op": "add", "path": "members", "value": [{"value": A, "type": "Group"}]}])
            ),
            Some(ScimType::InvalidValue)
        );
        assert_eq!(
            kind(json!([{"op": "remove", "path": "displayName"}])),
            Some(ScimType::Mutability)
        );
        assert_eq!(
            kind(json!([{"op": "replace", "path": "userName", "value": "x"}])),
            Some(ScimType::InvalidPath)
        );
        assert_eq!(
            kind(json!([{"op": "remove", "path": "members[display eq \"x\"]"}])),
            Some(ScimType::InvalidFilter)
        );
        assert_eq!(
            kind(json!([{"op": "remove", "path": "members[value eq"}])),
            Some(ScimType::InvalidFilter)
        );
        assert_eq!(
            kind(json!([{"op": "replace", "path": "displayName", "value": ""}])),
            Some(ScimType::InvalidValue)
        );
        assert_eq!(
            kind(json!([{"op": "replace", "path": "displayName", "value": 7}])),
            Some(ScimType::InvalidValue)
        );
        assert_eq!(
            parse_group(&json!({"members": []})).unwrap_err().scim_type,
            Some(ScimType::InvalidValue)
        );
        assert_eq!(
            parse_group(&json!({"displayName": "x", "members": "a"}))
                .unwrap_err()
                .status,
            400
        );
        assert!(parse_patch(&json!({"Operations": {}})).is_err());
    }

    #[test]
    fn duplicates_in_a_list_count_once() {
        let g = parse_group(
            &json!({"displayName": "x", "members": [{"value": A}, {"value": A}, {"value": B}]}),
        )
        .unwrap();
        assert_eq!(g.members, [id(A), id(B)]);
    }

    #[test]
    fn rendering() {
        let t = time::macros::datetime!(2026-12-02 10:00 UTC);
        let head = render_head(&GroupView {
            id: A,
            display_name: "Eng",
            external_id: None,
            created: t,
            last_modified: t,
            version: 3,
            base: "http://h/scim/v2",
        });
        assert_eq!(
            head["meta"]["location"],
            format!("http://h/scim/v2/Groups/{A}")
        );
        assert_eq!(head["meta"]["version"], "W/\"3\"");
        assert!(head.get("externalId").is_none() && head.get("members").is_none());
        let m = member_entry("http://h/scim/v2", B, "Bea");
        assert_eq!(m["$ref"], format!("http://h/scim/v2/Users/{B}"));
        assert_eq!(m["type"], "User");
    }
}
