//! SCIM filters and sort orders as SQL, for SQLite and PostgreSQL, with bound
//! parameters only (values never enter the SQL text; attribute names come from the
//! static schema, never from the request).
//!
//! The semantics mirror `scim::filter::matches` exactly, so the database and the
//! in-memory evaluator select the same members (a property test checks this):
//! an absent attribute fails every comparison except `ne`; a multi-valued attribute
//! matches when any element does; `ne` is `not eq`. Every leaf is made two-valued
//! (`COALESCE(.., FALSE)`) so `not` never meets SQL's NULL.
//!
//! userName and email values are compared on their case-folded columns (folded in
//! Rust, indexed); other case-insensitive strings use SQL `lower()`, which in SQLite
//! folds ASCII letters only.

use super::{Backend, StoreError};
use crate::scim::filter::{CompValue, CompareOp, Filter};
use crate::scim::schema::{AttrRef, AttrType, Attribute};
use uuid::Uuid;

pub use super::sql::Bind;

/// Builds one SQL text and its parameters.
pub struct SqlBuilder {
    pub backend: Backend,
    pub binds: Vec<Bind>,
}

impl SqlBuilder {
    pub fn new(backend: Backend) -> Self {
        SqlBuilder {
            backend,
            binds: Vec::new(),
        }
    }

    /// Add a parameter; returns its placeholder.
    pub fn bind(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }

    fn sqlite(&self) -> bool {
        self.backend == Backend::Sqlite
    }

    fn falsy(&self) -> &'static str {
        "(1 = 0)"
    }

    fn truthy(&self) -> &'static str {
        "(1 = 1)"
    }

    /// JSON object member `key` of `base` as text (strings unquoted).
    fn text_field(&self, base: &str, key: &str) -> String {
        if self.sqlite() {
            format!("json_extract({base}, '$.\"{}\"')", quote_key(key))
        } else {
            format!("({base}->>'{}')", quote_key(key))
        }
    }

    /// JSON object member `key` of `base` as JSON.
    fn json_field(&self, base: &str, key: &str) -> String {
        if self.sqlite() {
            format!("json_extract({base}, '$.\"{}\"')", quote_key(key))
        } else {
            format!("({base}->'{}')", quote_key(key))
        }
    }

    /// `base.key` is the JSON boolean `want`.
    fn bool_field_is(&self, base: &str, key: &str, want: bool) -> String {
        if self.sqlite() {
            format!("(json_type({base}, '$.\"{}\"') = '{want}')", quote_key(key))
        } else {
            format!("(({base}->'{}') = '{want}'::jsonb)", quote_key(key))
        }
    }

    /// `EXISTS` over the elements of the array `base.key`; the element is `e<n>.value`.
    fn exists_element(
        &mut self,
        base: &str,
        key: &str,
        inner: impl FnOnce(&mut Self, &str) -> String,
    ) -> String {
        let alias = format!("e{}", self.binds.len() + base.len());
        let element = format!("{alias}.value");
        let cond = inner(self, &element);
        // A member with no roles stored is a contributor, and is rendered so: filters
        // see the same list.
        let default = (base == MEMBER && key == "roles").then(|| {
            crate::scim::resource::default_roles()
                .to_string()
                .replace('\'', "''")
        });
        if self.sqlite() {
            let each = match default {
                Some(d) => format!(
                    "json_each(COALESCE(json_extract({base}, '$.\"{}\"'), '{d}'))",
                    quote_key(key)
                ),
                None => format!("json_each({base}, '$.\"{}\"')", quote_key(key)),
            };
            format!("EXISTS (SELECT 1 FROM {each} {alias} WHERE {cond})")
        } else {
            let arr = match default {
                Some(d) => format!("COALESCE({base}->'{}', '{d}'::jsonb)", quote_key(key)),
                None => format!("({base}->'{}')", quote_key(key)),
            };
            format!(
                "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof({arr}) = 'array' \
                 THEN {arr} ELSE '[]'::jsonb END) {alias} WHERE {cond})"
            )
        }
    }

    fn coalesce(&self, cond: String) -> String {
        format!("COALESCE(({cond}), FALSE)")
    }

    /// Byte-order comparison in PostgreSQL (the in-memory order), default elsewhere.
    fn ordered(&self, expr: &str) -> String {
        if self.sqlite() {
            expr.to_owned()
        } else {
            format!("{expr} COLLATE \"C\"")
        }
    }
}

/// Keys come from the static schema; escape anyway so no name can break the SQL.
fn quote_key(key: &str) -> String {
    key.replace('\'', "''").replace('"', "\\\"")
}

fn like_pattern(op: CompareOp, value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    match op {
        CompareOp::Co => format!("%{escaped}%"),
        CompareOp::Sw => format!("{escaped}%"),
        _ => format!("%{escaped}"),
    }
}

fn sql_op(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Ne | CompareOp::Co | CompareOp::Sw | CompareOp::Ew => "=",
    }
}

fn unsupported(what: &str) -> StoreError {
    StoreError::InvalidFilter(format!("filtering on {what} is not supported"))
}

const MEMBER: &str = "m.resource";

/// The SQL condition for `filter` on the members table aliased `m`.
pub fn compile(b: &mut SqlBuilder, filter: &Filter) -> Result<String, StoreError> {
    compile_at(b, filter, None)
}

/// `element`: inside a value path, the SQL expression of the current element.
fn compile_at(
    b: &mut SqlBuilder,
    filter: &Filter,
    element: Option<&str>,
) -> Result<String, StoreError> {
    Ok(match filter {
        Filter::And(x, y) => format!(
            "({} AND {})",
            compile_at(b, x, element)?,
            compile_at(b, y, element)?
        ),
        Filter::Or(x, y) => format!(
            "({} OR {})",
            compile_at(b, x, element)?,
            compile_at(b, y, element)?
        ),
        Filter::Not(x) => format!("(NOT {})", compile_at(b, x, element)?),
        Filter::Present { attr } => present(b, attr, element)?,
        Filter::Compare { attr, op, value } => match (op, value) {
            (CompareOp::Ne, _) => {
                let eq = Filter::Compare {
                    attr: *attr,
                    op: CompareOp::Eq,
                    value: value.clone(),
                };
                format!("(NOT {})", compile_at(b, &eq, element)?)
            }
            (CompareOp::Eq, CompValue::Null) => {
                format!("(NOT {})", present(b, attr, element)?)
            }
            _ => compare(b, attr, *op, value, element)?,
        },
        Filter::ValuePath { attr, filter } => value_path(b, attr, filter)?,
    })
}

/// Where the values of `attr` live.
enum Place<'a> {
    /// A member column (userName, externalId, id, active, meta dates).
    Column(&'static str),
    /// A single JSON value: `base` object, `key` member.
    Json { base: String, key: &'static str },
    /// Each element of the array `base.key`, then member `sub` of it (None: the element).
    Elements {
        base: String,
        key: &'static str,
        sub: Option<&'a Attribute>,
    },
}

fn place<'a>(
    b: &SqlBuilder,
    attr: &'a AttrRef,
    element: Option<&str>,
) -> Result<Place<'a>, StoreError> {
    if let (Some(e), Some(sub)) = (element, attr.sub) {
        return Ok(Place::Json {
            base: e.to_owned(),
            key: sub.name,
        });
    }
    if attr.is_common() {
        return match (attr.attr.name, attr.sub.map(|s| s.name)) {
            ("id", None) => Ok(Place::Column("id")),
            ("externalId", None) => Ok(Place::Column("external_id")),
            ("meta", Some("created")) => Ok(Place::Column("created_at")),
            ("meta", Some("lastModified")) => Ok(Place::Column("updated_at")),
            _ => Err(unsupported(&attr.json_path().join("."))),
        };
    }
    if !attr.is_extension() {
        match (attr.attr.name, attr.sub) {
            ("userName", None) => return Ok(Place::Column("user_name_ci")),
            ("password", _) | ("groups", _) => return Err(unsupported(attr.attr.name)),
            _ => {}
        }
    }
    let path = attr.json_path();
    if attr.attr.multi_valued {
        // Multi-valued attributes are top-level core attributes.
        return Ok(Place::Elements {
            base: MEMBER.to_owned(),
            key: attr.attr.name,
            sub: attr.sub,
        });
    }
    // Singular: [attr], [attr, sub], [urn, attr] or [urn, attr, sub].
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| unsupported("an empty path"))?;
    let mut base = MEMBER.to_owned();
    for p in parents {
        base = b.json_field(&base, p);
    }
    Ok(Place::Json { base, key: last })
}

fn present(
    b: &mut SqlBuilder,
    attr: &AttrRef,
    element: Option<&str>,
) -> Result<String, StoreError> {
    Ok(match place(b, attr, element)? {
        Place::Column("external_id") => "(m.external_id IS NOT NULL)".to_owned(),
        Place::Column(_) => b.truthy().to_owned(),
        Place::Json { base, key } => format!("({} IS NOT NULL)", b.json_field(&base, key)),
        Place::Elements { base, key, sub } => b.exists_element(&base, key, |b, e| match sub {
            Some(s) => format!("({} IS NOT NULL)", b.json_field(e, s.name)),
            None => b.truthy().to_owned(),
        }),
    })
}

fn compare(
    b: &mut SqlBuilder,
    attr: &AttrRef,
    op: CompareOp,
    value: &CompValue,
    element: Option<&str>,
) -> Result<String, StoreError> {
    let leaf = attr.leaf();
    match place(b, attr, element)? {
        Place::Column(col) => column_compare(b, col, op, value),
        Place::Json { base, key } => Ok(json_compare(b, &base, key, leaf, op, value)),
        Place::Elements { base, key, sub } => {
            let Some(sub) = sub else {
                // `emails eq "x"` resolves to emails.value in the parser; a bare
                // complex comparison cannot be expressed.
                return Err(StoreError::InvalidFilter(format!(
                    "compare a sub-attribute of {key}, like {key}.value"
                )));
            };
            if let (("emails", "value", CompareOp::Eq), CompValue::Str(s)) =
                ((key, sub.name, op), value)
            {
                // The indexed side table of email values.
                let p = b.bind(Bind::Text(crate::domain::fold_case(s)));
                return Ok(format!(
                    "m.id IN (SELECT me.member_id FROM member_emails me \
                     WHERE me.workspace_id = m.workspace_id AND me.value_ci = {p})"
                ));
            }
            Ok(b.exists_element(&base, key, |b, e| {
                json_compare(b, e, sub.name, sub, op, value)
            }))
        }
    }
}

/// Comparison of one JSON member against a value, two-valued.
fn json_compare(
    b: &mut SqlBuilder,
    base: &str,
    key: &str,
    leaf: &Attribute,
    op: CompareOp,
    value: &CompValue,
) -> String {
    match value {
        CompValue::Bool(want) if op == CompareOp::Eq => {
            let cond = b.bool_field_is(base, key, *want);
            b.coalesce(cond)
        }
        CompValue::Str(s) => {
            let expr = b.text_field(base, key);
            string_compare(b, &expr, leaf.case_exact, op, s)
        }
        CompValue::Num(n) => {
            let expr = b.text_field(base, key);
            string_compare(b, &expr, true, op, &n.to_string())
        }
        _ => b.falsy().to_owned(),
    }
}

fn string_compare(
    b: &mut SqlBuilder,
    expr: &str,
    case_exact: bool,
    op: CompareOp,
    want: &str,
) -> String {
    let (expr, want) = if case_exact {
        (expr.to_owned(), want.to_owned())
    } else {
        (format!("lower({expr})"), want.to_lowercase())
    };
    let cond = match op {
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew if want.is_empty() => {
            format!("({expr} IS NOT NULL)")
        }
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew if case_exact => {
            exact_substring(b, &expr, op, &want)
        }
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {
            let p = b.bind(Bind::Text(like_pattern(op, &want)));
            format!("{expr} LIKE {p} ESCAPE '\\'")
        }
        _ => {
            let p = b.bind(Bind::Text(want));
            if op == CompareOp::Eq {
                format!("{expr} = {p}")
            } else {
                format!("{} {} {p}", b.ordered(&expr), sql_op(op))
            }
        }
    };
    b.coalesce(cond)
}

fn exact_substring(b: &mut SqlBuilder, expr: &str, op: CompareOp, want: &str) -> String {
    let p1 = b.bind(Bind::Text(want.to_owned()));
    let p2 = b.bind(Bind::Text(want.to_owned()));
    match (op, b.sqlite()) {
        (CompareOp::Co, true) => format!("instr({expr}, {p1}) > 0 AND length({p2}) >= 0"),
        (CompareOp::Co, false) => format!("strpos({expr}, {p1}) > 0 AND length({p2}) >= 0"),
        (CompareOp::Sw, true) => format!("substr({expr}, 1, length({p1})) = {p2}"),
        (CompareOp::Sw, false) => format!("left({expr}, length({p1})) = {p2}"),
        (_, true) => format!("substr({expr}, -length({p1})) = {p2}"),
        (_, false) => format!("right({expr}, length({p1})) = {p2}"),
    }
}

fn column_compare(
    b: &mut SqlBuilder,
    col: &'static str,
    op: CompareOp,
    value: &CompValue,
) -> Result<String, StoreError> {
    column_compare_on(b, "m", col, op, value)
}

/// A comparison on column `col` of the table aliased `alias`.
fn column_compare_on(
    b: &mut SqlBuilder,
    alias: &str,
    col: &'static str,
    op: CompareOp,
    value: &CompValue,
) -> Result<String, StoreError> {
    let qualified = format!("{alias}.{col}");
    Ok(match (col, value) {
        ("user_name_ci" | "display_name_ci", CompValue::Str(s)) => {
            // Already folded in the column; fold the value the same way.
            let folded = crate::domain::fold_case(s);
            let cond = match op {
                CompareOp::Co | CompareOp::Sw | CompareOp::Ew if folded.is_empty() => {
                    b.truthy().to_owned()
                }
                CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {
                    let p = b.bind(Bind::Text(like_pattern(op, &folded)));
                    format!("{qualified} LIKE {p} ESCAPE '\\'")
                }
                CompareOp::Eq => {
                    // The column is NOT NULL: already two-valued. No COALESCE, which
                    // would hide the comparison from the (workspace_id, user_name_ci)
                    // index and make every existence check walk the workspace.
                    let p = b.bind(Bind::Text(folded));
                    return Ok(format!("({qualified} = {p})"));
                }
                _ => {
                    let p = b.bind(Bind::Text(folded));
                    format!("{} {} {p}", b.ordered(&qualified), sql_op(op))
                }
            };
            b.coalesce(cond)
        }
        ("external_id", CompValue::Str(s)) if op == CompareOp::Eq => {
            // Two-valued without COALESCE, so the (workspace_id, external_id) index
            // serves it.
            let p = b.bind(Bind::Text(s.clone()));
            format!("({qualified} IS NOT NULL AND {qualified} = {p})")
        }
        ("external_id", CompValue::Str(s)) => string_compare(b, &qualified, true, op, s),
        ("id", CompValue::Str(s)) => match op {
            // Ids are compared as their canonical lowercase text, like the in-memory
            // matcher (id is caseExact).
            CompareOp::Eq => match Uuid::parse_str(s) {
                Ok(u) if u.hyphenated().to_string() == *s => {
                    let p = b.bind(Bind::Uuid(u));
                    format!("({qualified} = {p})")
                }
                _ => b.falsy().to_owned(),
            },
            _ => {
                return Err(StoreError::InvalidFilter(
                    "id supports the eq, ne and pr operators only".into(),
                ));
            }
        },
        ("active", CompValue::Bool(want)) if op == CompareOp::Eq => {
            let p = b.bind(Bind::Bool(*want));
            format!("({qualified} = {p})")
        }
        ("created_at" | "updated_at", CompValue::DateTime(t)) => {
            if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
                return Ok(b.falsy().to_owned());
            }
            if b.sqlite() {
                // Stored as RFC 3339 text; compare normalised UTC instants at
                // millisecond precision (what is stored).
                let p = b.bind(Bind::Text(crate::scim::resource::format_datetime(*t)));
                format!(
                    "(strftime('%Y-%m-%dT%H:%M:%f', {qualified}) {} strftime('%Y-%m-%dT%H:%M:%f', {p}))",
                    sql_op(op)
                )
            } else {
                let p = b.bind(Bind::Time(*t));
                format!("({qualified} {} {p})", sql_op(op))
            }
        }
        _ => b.falsy().to_owned(),
    })
}

fn value_path(b: &mut SqlBuilder, attr: &AttrRef, inner: &Filter) -> Result<String, StoreError> {
    if attr.attr.ty != AttrType::Complex {
        return Err(StoreError::InvalidFilter(format!(
            "{} is not a complex attribute",
            attr.attr.name
        )));
    }
    let path = attr.json_path();
    if attr.attr.multi_valued {
        let mut failed = None;
        let sql = b.exists_element(MEMBER, attr.attr.name, |b, e| {
            match compile_at(b, inner, Some(e)) {
                Ok(s) => s,
                Err(err) => {
                    failed = Some(err);
                    String::new()
                }
            }
        });
        return match failed {
            Some(err) => Err(err),
            None => Ok(sql),
        };
    }
    // A singular complex attribute acts as a list of one element.
    let mut base = MEMBER.to_owned();
    for key in &path {
        base = b.json_field(&base, key);
    }
    let cond = compile_at(b, inner, Some(&base))?;
    Ok(format!("({base} IS NOT NULL AND {cond})"))
}

/// `ORDER BY` for a sortBy attribute; ties and the default order by id (creation).
pub fn order_by(b: &SqlBuilder, sort: Option<&AttrRef>, descending: bool) -> String {
    let dir = if descending { "DESC" } else { "ASC" };
    let Some(attr) = sort else {
        return format!("m.id {dir}");
    };
    let expr = match place(b, attr, None) {
        Ok(Place::Column("id")) | Err(_) => return format!("m.id {dir}"),
        Ok(Place::Column(col)) => format!("m.{col}"),
        Ok(Place::Json { base, key }) => {
            if attr.leaf().case_exact {
                b.text_field(&base, key)
            } else {
                format!("lower({})", b.text_field(&base, key))
            }
        }
        // Multi-valued: sort by the primary (else first) element's value.
        Ok(Place::Elements { key, sub, .. }) => {
            let sub = sub.map_or("value", |s| s.name);
            if b.sqlite() {
                format!(
                    "lower(json_extract(m.resource, '$.\"{}\"[0].\"{}\"'))",
                    quote_key(key),
                    quote_key(sub)
                )
            } else {
                format!(
                    "lower(m.resource->'{}'->0->>'{}')",
                    quote_key(key),
                    quote_key(sub)
                )
            }
        }
    };
    // Absent values sort last in both directions; id keeps the order total.
    format!("({expr}) IS NULL, {} {dir}, m.id {dir}", b.ordered(&expr))
}

// ---------------------------------------------------------------------------
// Teams (SCIM Groups)
// ---------------------------------------------------------------------------

/// Where a Group attribute lives.
enum TeamPlace {
    /// A column of the teams table aliased `t`.
    Column(&'static str),
    /// The member ids (`members.value`, or `members` itself).
    MemberIds,
}

fn team_place(attr: &AttrRef) -> Result<TeamPlace, StoreError> {
    let sub = attr.sub.map(|s| s.name);
    match (attr.attr.name, sub) {
        ("id", None) => Ok(TeamPlace::Column("id")),
        ("externalId", None) => Ok(TeamPlace::Column("external_id")),
        ("displayName", None) => Ok(TeamPlace::Column("display_name_ci")),
        ("meta", Some("created")) => Ok(TeamPlace::Column("created_at")),
        ("meta", Some("lastModified")) => Ok(TeamPlace::Column("updated_at")),
        ("members", None | Some("value")) => Ok(TeamPlace::MemberIds),
        _ => Err(unsupported(&attr.json_path().join("."))),
    }
}

/// The teams with this member: through the (member_id, team_id) index.
fn has_member(b: &mut SqlBuilder, value: &CompValue) -> String {
    match value {
        CompValue::Str(s) => match Uuid::parse_str(s) {
            Ok(u) => {
                let p = b.bind(Bind::Uuid(u));
                format!("t.id IN (SELECT tm.team_id FROM team_members tm WHERE tm.member_id = {p})")
            }
            Err(_) => b.falsy().to_owned(),
        },
        _ => b.falsy().to_owned(),
    }
}

/// The SQL condition for a Group `filter` on the teams table aliased `t`. Supported:
/// `displayName` (case-insensitive), `externalId`, `id`, `meta.created`,
/// `meta.lastModified`, `members.value eq` / `members[value eq ...]` (through the
/// membership index), `pr`, and `and`/`or`/`not` of those.
pub fn compile_team(b: &mut SqlBuilder, filter: &Filter) -> Result<String, StoreError> {
    Ok(match filter {
        Filter::And(x, y) => format!("({} AND {})", compile_team(b, x)?, compile_team(b, y)?),
        Filter::Or(x, y) => format!("({} OR {})", compile_team(b, x)?, compile_team(b, y)?),
        Filter::Not(x) => format!("(NOT {})", compile_team(b, x)?),
        Filter::Present { attr } => match team_place(attr)? {
            TeamPlace::Column("external_id") => "(t.external_id IS NOT NULL)".to_owned(),
            TeamPlace::Column(_) => b.truthy().to_owned(),
            TeamPlace::MemberIds => "(t.member_count > 0)".to_owned(),
        },
        Filter::Compare { attr, op, value } => match (op, value) {
            (CompareOp::Ne, _) => {
                let eq = Filter::Compare {
                    attr: *attr,
                    op: CompareOp::Eq,
                    value: value.clone(),
                };
                format!("(NOT {})", compile_team(b, &eq)?)
            }
            (CompareOp::Eq, CompValue::Null) => {
                format!(
                    "(NOT {})",
                    compile_team(b, &Filter::Present { attr: *attr })?
                )
            }
            _ => match team_place(attr)? {
                TeamPlace::Column(col) => column_compare_on(b, "t", col, *op, value)?,
                TeamPlace::MemberIds if *op == CompareOp::Eq => has_member(b, value),
                TeamPlace::MemberIds => {
                    return Err(StoreError::InvalidFilter(
                        "members.value supports the eq, ne and pr operators only".into(),
                    ));
                }
            },
        },
        Filter::ValuePath { attr, filter } => {
            if attr.attr.name != "members" {
                return Err(unsupported(attr.attr.name));
            }
            // `members[value eq "a" or value eq "b"]`: within one element, which for
            // a member list is one member id.
            compile_team(b, filter)?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse;

    fn sql(backend: Backend, f: &str) -> (String, Vec<Bind>) {
        let mut b = SqlBuilder::new(backend);
        let s = compile(&mut b, &parse(f).unwrap()).unwrap();
        (s, b.binds)
    }

    #[test]
    fn user_name_eq_uses_the_folded_indexed_column() {
        let (s, binds) = sql(Backend::Sqlite, "userName eq \"Ada@Example.COM\"");
        assert_eq!(s, "(m.user_name_ci = $1)");
        assert_eq!(binds, vec![Bind::Text("ada@example.com".into())]);
    }

    #[test]
    fn email_eq_uses_the_side_table() {
        let (s, binds) = sql(Backend::Postgres, "emails.value eq \"A@x.org\"");
        assert!(
            s.contains("member_emails") && s.contains("me.value_ci = $1"),
            "{s}"
        );
        assert_eq!(binds, vec![Bind::Text("a@x.org".into())]);
        let (s, _) = sql(Backend::Sqlite, "emails[value eq \"a@x.org\"]");
        assert!(
            s.starts_with("EXISTS (SELECT 1 FROM json_each(m.resource, '$.\"emails\"')"),
            "{s}"
        );
    }

    #[test]
    fn values_are_always_bound_never_inlined() {
        let evil = "x' OR '1'='1";
        for f in [
            format!("userName eq \"{evil}\""),
            format!("title co \"{evil}\""),
            format!("emails[type eq \"{evil}\"]"),
            format!(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department sw \"{evil}\""
            ),
        ] {
            for backend in [Backend::Sqlite, Backend::Postgres] {
                let (s, binds) = sql(backend, &f);
                assert!(!s.contains("OR '1'"), "{s}");
                assert!(!binds.is_empty());
            }
        }
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(
            like_pattern(CompareOp::Co, "50%_off\\"),
            "%50\\%\\_off\\\\%"
        );
        assert_eq!(like_pattern(CompareOp::Sw, "a"), "a%");
        assert_eq!(like_pattern(CompareOp::Ew, "a"), "%a");
    }

    #[test]
    fn enterprise_and_nested_paths_per_dialect() {
        let f =
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq \"m1\"";
        let (s, _) = sql(Backend::Postgres, f);
        assert!(s.contains("(m.resource->'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User')->'manager')->>'value'"), "{s}");
        let (s, _) = sql(Backend::Sqlite, f);
        assert!(s.contains("json_extract(json_extract(json_extract(m.resource, '$.\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\"')"), "{s}");
    }

    #[test]
    fn ne_and_not_are_negations_of_two_valued_conditions() {
        let (s, _) = sql(
            Backend::Sqlite,
            "not (title eq \"x\") and externalId ne \"y\"",
        );
        assert!(s.starts_with("((NOT COALESCE(("), "{s}");
        assert!(
            s.contains("(NOT (m.external_id IS NOT NULL AND m.external_id = $2))"),
            "{s}"
        );
    }

    #[test]
    fn id_filters() {
        let id = Uuid::now_v7().to_string();
        let (s, binds) = sql(Backend::Sqlite, &format!("id eq \"{id}\""));
        assert_eq!(s, "(m.id = $1)");
        assert_eq!(binds, vec![Bind::Uuid(Uuid::parse_str(&id).unwrap())]);
        let (s, _) = sql(Backend::Sqlite, "id eq \"not-a-uuid\"");
        assert_eq!(s, "(1 = 0)");
        let mut b = SqlBuilder::new(Backend::Sqlite);
        let err = compile(&mut b, &parse("id sw \"01\"").unwrap()).unwrap_err();
        assert!(matches!(err, StoreError::InvalidFilter(_)), "{err}");
    }
}
