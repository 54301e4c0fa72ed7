//! The SCIM schemas Rollcall serves (RFC 7643 §4.1 core User, §4.3 enterprise
//! extension, §3.1 common attributes) as static data, attribute resolution for
//! filter and PATCH paths, and the `/Schemas` representation (RFC 7643 §7).

use serde_json::{Map, Value, json};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The schema of the `/Schemas` resources themselves.
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Reference,
    Complex,
    Binary,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
            AttrType::Binary => "binary",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Uniqueness {
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

#[derive(Debug)]
pub struct Attribute {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub_attributes: &'static [Attribute],
    pub description: &'static str,
}

impl Attribute {
    /// The sub-attribute called `name` (ASCII case-insensitive), `$ref` included.
    pub fn sub(&'static self, name: &str) -> Option<&'static Attribute> {
        find(self.sub_attributes, name)
    }

    // Builders for the static tables below. Defaults follow RFC 7643 §2.2:
    // singular, optional, caseExact false, readWrite, returned default, uniqueness none.
    const fn new(name: &'static str, ty: AttrType, description: &'static str) -> Attribute {
        Attribute {
            name,
            ty,
            multi_valued: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: &[],
            reference_types: &[],
            sub_attributes: &[],
            description,
        }
    }
    const fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }
    const fn exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    const fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    const fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    const fn uniqueness(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    const fn canonical(mut self, v: &'static [&'static str]) -> Self {
        self.canonical_values = v;
        self
    }
    const fn refs(mut self, r: &'static [&'static str]) -> Self {
        self.reference_types = r;
        self
    }
    const fn subs(mut self, s: &'static [Attribute]) -> Self {
        self.sub_attributes = s;
        self
    }
}

#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attribute],
}

impl Schema {
    /// The top-level attribute of this schema called `name` (ASCII case-insensitive).
    /// Common attributes (id, externalId, meta) are not part of any schema: see [`COMMON`].
    pub fn attribute(&'static self, name: &str) -> Option<&'static Attribute> {
        find(self.attributes, name)
    }
}

fn find(attrs: &'static [Attribute], name: &str) -> Option<&'static Attribute> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

const fn string(name: &'static str, description: &'static str) -> Attribute {
    Attribute::new(name, AttrType::String, description)
}
const fn boolean(name: &'static str, description: &'static str) -> Attribute {
    Attribute::new(name, AttrType::Boolean, description)
}
const fn reference(
    name: &'static str,
    types: &'static [&'static str],
    description: &'static str,
) -> Attribute {
    Attribute::new(name, AttrType::Reference, description).refs(types)
}
const fn complex(
    name: &'static str,
    subs: &'static [Attribute],
    description: &'static str,
) -> Attribute {
    Attribute::new(name, AttrType::Complex, description).subs(subs)
}

// ---------------------------------------------------------------------------
// Core User (RFC 7643 §4.1, §8.7.1)
// ---------------------------------------------------------------------------

static NAME_SUBS: [Attribute; 6] = [
    string(
        "formatted",
        "The full name, including all middle names, titles, and suffixes as appropriate, \
         formatted for display (e.g., 'Ms. Barbara J Jensen, III').",
    ),
    string(
        "familyName",
        "The family name of the User, or last name in most Western languages.",
    ),
    string(
        "givenName",
        "The given name of the User, or first name in most Western languages.",
    ),
    string("middleName", "The middle name(s) of the User."),
    string(
        "honorificPrefix",
        "The honorific prefix(es) of the User, or title in most Western languages.",
    ),
    string(
        "honorificSuffix",
        "The honorific suffix(es) of the User, or suffix in most Western languages.",
    ),
];

const PRIMARY_DESC: &str = "A Boolean value indicating the 'primary' or preferred attribute value \
                            for this attribute. The primary attribute value 'true' MUST appear \
                            no more than once.";

static EMAIL_SUBS: [Attribute; 4] = [
    string(
        "value",
        "Email addresses for the user. The value SHOULD be canonicalized by the service \
         provider, e.g., 'bjensen@example.com' instead of 'bjensen@EXAMPLE.COM'.",
    ),
    string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    string(
        "type",
        "A label indicating the attribute's function, e.g., 'work' or 'home'.",
    )
    .canonical(&["work", "home", "other"]),
    boolean("primary", PRIMARY_DESC),
];

static PHONE_SUBS: [Attribute; 4] = [
    string("value", "Phone number of the User."),
    string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    string(
        "type",
        "A label indicating the attribute's function, e.g., 'work', 'home', 'mobile'.",
    )
    .canonical(&["work", "home", "mobile", "fax", "pager", "other"]),
    boolean("primary", PRIMARY_DESC),
];

static IM_SUBS: [Attribute; 4] = [
    string("value", "Instant messaging address for the User."),
    string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    string(
        "type",
        "A label indicating the attribute's function, e.g., 'aim', 'gtalk', 'xmpp'.",
    )
    .canonical(&["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
    boolean("primary", PRIMARY_DESC),
];

static PHOTO_SUBS: [Attribute; 4] = [
    reference("value", &["external"], "URL of a photo of the User."),
    string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    string(
        "type",
        "A label indicating the attribute's function, i.e., 'photo' or 'thumbnail'.",
    )
    .canonical(&["photo", "thumbnail"]),
    boolean("primary", PRIMARY_DESC),
];

static ADDRESS_SUBS: [Attribute; 8] = [
    string(
        "formatted",
        "The full mailing address, formatted for display or use with a mailing label.",
    ),
    string(
        "streetAddress",
        "The full street address component, which may include house number, street name, \
         P.O. box, and multi-line extended street address information.",
    ),
    string("locality", "The city or locality component."),
    string("region", "The state or region component."),
    string("postalCode", "The zip code or postal code component."),
    string("country", "The country name component."),
    string(
        "type",
        "A label indicating the attribute's function, e.g., 'work' or 'home'.",
    )
    .canonical(&["work", "home", "other"]),
    boolean("primary", PRIMARY_DESC),
];

static GROUP_SUBS: [Attribute; 4] = [
    string("value", "The identifier of the User's group.").mutability(Mutability::ReadOnly),
    reference(
        "$ref",
        &["User", "Group"],
        "The URI of the corresponding 'Group' resource to which the user belongs.",
    )
    .mutability(Mutability::ReadOnly),
    string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    )
    .mutability(Mutability::ReadOnly),
    string(
        "type",
        "A label indicating the attribute's function, e.g., 'direct' or 'indirect'.",
    )
    .canonical(&["direct", "indirect"])
    .mutability(Mutability::ReadOnly),
];

static ENTITLEMENT_SUBS: [Attribute; 4] = [
    string("value", "The value of an entitlement."),
    string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    string("type", "A label indicating the attribute's function."),
    boolean("primary", PRIMARY_DESC),
];

static ROLE_SUBS: [Attribute; 4] = [
    string(
        "value",
        "The value of a role: the member's workspace role, one of admin, maker, contributor, \
         viewer.",
    )
    .canonical(&["admin", "maker", "contributor", "viewer"]),
    string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    string("type", "A label indicating the attribute's function."),
    boolean("primary", PRIMARY_DESC),
];

static X509_SUBS: [Attribute; 4] = [
    Attribute::new(
        "value",
        AttrType::Binary,
        "The value of an X.509 certificate.",
    ),
    string(
        "display",
        "A human-readable name, primarily used for display purposes.",
    ),
    string("type", "A label indicating the attribute's function."),
    boolean("primary", PRIMARY_DESC),
];

static USER_ATTRS: [Attribute; 21] = [
    string(
        "userName",
        "Unique identifier for the User, typically used by the user to directly authenticate \
         to the service provider. Each User MUST include a non-empty userName value. This \
         identifier MUST be unique across the service provider's entire set of Users.",
    )
    .required()
    .uniqueness(Uniqueness::Server),
    complex(
        "name",
        &NAME_SUBS,
        "The components of the user's real name.",
    ),
    string(
        "displayName",
        "The name of the User, suitable for display to end-users.",
    ),
    string(
        "nickName",
        "The casual way to address the user in real life.",
    ),
    reference(
        "profileUrl",
        &["external"],
        "A fully qualified URL pointing to a page representing the User's online profile.",
    ),
    string("title", "The user's title, such as \"Vice President.\""),
    string(
        "userType",
        "Used to identify the relationship between the organization and the user.",
    ),
    string(
        "preferredLanguage",
        "Indicates the User's preferred written or spoken language, e.g., 'en-US'.",
    ),
    string(
        "locale",
        "Used to indicate the User's default location for purposes of localizing items such \
         as currency, date time format, or numerical representations.",
    ),
    string(
        "timezone",
        "The User's time zone in the 'Olson' time zone database format, e.g., \
         'America/Los_Angeles'.",
    ),
    boolean(
        "active",
        "A Boolean value indicating the User's administrative status.",
    ),
    string(
        "password",
        "The User's cleartext password. Accepted and ignored: never stored or returned.",
    )
    .mutability(Mutability::WriteOnly)
    .returned(Returned::Never),
    complex("emails", &EMAIL_SUBS, "Email addresses for the user.").multi(),
    complex("phoneNumbers", &PHONE_SUBS, "Phone numbers for the User.").multi(),
    complex("ims", &IM_SUBS, "Instant messaging addresses for the User.").multi(),
    complex("photos", &PHOTO_SUBS, "URLs of photos of the User.").multi(),
    complex(
        "addresses",
        &ADDRESS_SUBS,
        "A physical mailing address for this User.",
    )
    .multi(),
    complex(
        "groups",
        &GROUP_SUBS,
        "A list of groups to which the user belongs.",
    )
    .multi()
    .mutability(Mutability::ReadOnly),
    complex(
        "entitlements",
        &ENTITLEMENT_SUBS,
        "A list of entitlements for the User that represent a thing the User has.",
    )
    .multi(),
    complex(
        "roles",
        &ROLE_SUBS,
        "A list of roles for the User. The entry with primary true is the member's \
         workspace role.",
    )
    .multi(),
    complex(
        "x509Certificates",
        &X509_SUBS,
        "A list of certificates issued to the User.",
    )
    .multi(),
];

pub static USER: Schema = Schema {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: &USER_ATTRS,
};

// ---------------------------------------------------------------------------
// Enterprise User extension (RFC 7643 §4.3, §8.7.1)
// ---------------------------------------------------------------------------

static MANAGER_SUBS: [Attribute; 3] = [
    string(
        "value",
        "The id of the SCIM resource representing the User's manager.",
    ),
    reference(
        "$ref",
        &["User"],
        "The URI of the SCIM resource representing the User's manager.",
    ),
    string("displayName", "The displayName of the User's manager.")
        .mutability(Mutability::ReadOnly),
];

static ENTERPRISE_ATTRS: [Attribute; 6] = [
    string(
        "employeeNumber",
        "Numeric or alphanumeric identifier assigned to a person, typically based on order \
         of hire or association with an organization.",
    ),
    string("costCenter", "Identifies the name of a cost center."),
    string("organization", "Identifies the name of an organization."),
    string("division", "Identifies the name of a division."),
    string("department", "Identifies the name of a department."),
    complex(
        "manager",
        &MANAGER_SUBS,
        "The User's manager. A complex type that optionally allows service providers to \
         represent organizational hierarchy by referencing the 'id' attribute of another \
         User.",
    ),
];

pub static ENTERPRISE_USER: Schema = Schema {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &ENTERPRISE_ATTRS,
};

// ---------------------------------------------------------------------------
// Core Group (RFC 7643 §4.2, §8.7.1): a workspace's teams
// ---------------------------------------------------------------------------

static MEMBER_SUBS: [Attribute; 4] = [
    string(
        "value",
        "Identifier of the member of this Group: a User's id.",
    )
    .exact()
    .mutability(Mutability::Immutable),
    reference(
        "$ref",
        &["User"],
        "The URI corresponding to a SCIM resource that is a member of this Group.",
    )
    .mutability(Mutability::Immutable),
    string("display", "The member's displayName, else its userName.")
        .mutability(Mutability::ReadOnly),
    string(
        "type",
        "A label indicating the type of resource: 'User' (groups are not nested).",
    )
    .canonical(&["User"])
    .mutability(Mutability::Immutable),
];

static GROUP_ATTRS: [Attribute; 2] = [
    string(
        "displayName",
        "A human-readable name for the Group: the team's name, unique in the workspace \
         (ignoring case).",
    )
    .required()
    .uniqueness(Uniqueness::Server),
    complex("members", &MEMBER_SUBS, "A list of members of the Group.").multi(),
];

pub static GROUP: Schema = Schema {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group: a team of the workspace",
    attributes: &GROUP_ATTRS,
};

// ---------------------------------------------------------------------------
// Common attributes (RFC 7643 §3.1)
// ---------------------------------------------------------------------------

static META_SUBS: [Attribute; 5] = [
    string(
        "resourceType",
        "The name of the resource type of the resource.",
    )
    .exact()
    .mutability(Mutability::ReadOnly),
    Attribute::new(
        "created",
        AttrType::DateTime,
        "The DateTime that the resource was added to the service provider.",
    )
    .mutability(Mutability::ReadOnly),
    Attribute::new(
        "lastModified",
        AttrType::DateTime,
        "The most recent DateTime that the details of this resource were updated at the \
         service provider.",
    )
    .mutability(Mutability::ReadOnly),
    reference(
        "location",
        &["uri"],
        "The URI of the resource being returned.",
    )
    .exact()
    .mutability(Mutability::ReadOnly),
    string("version", "The version of the resource being returned.")
        .exact()
        .mutability(Mutability::ReadOnly),
];

static COMMON_ATTRS: [Attribute; 3] = [
    string(
        "id",
        "A unique identifier for a SCIM resource as defined by the service provider.",
    )
    .exact()
    .mutability(Mutability::ReadOnly)
    .returned(Returned::Always)
    .uniqueness(Uniqueness::Server),
    string(
        "externalId",
        "A String that is an identifier for the resource as defined by the provisioning \
         client.",
    )
    .exact(),
    complex(
        "meta",
        &META_SUBS,
        "A complex attribute containing resource metadata.",
    )
    .mutability(Mutability::ReadOnly),
];

/// RFC 7643 §3.1 common attributes: resolvable, but not listed in `/Schemas`.
pub static COMMON: &[Attribute] = &COMMON_ATTRS;

pub fn all_schemas() -> [&'static Schema; 3] {
    [&USER, &ENTERPRISE_USER, &GROUP]
}

// ---------------------------------------------------------------------------
// Resolution
// ---------------------------------------------------------------------------

/// A resolved attribute reference. `schema` is &USER for core and common attributes.
#[derive(Debug, Clone, Copy)]
pub struct AttrRef {
    pub schema: &'static Schema,
    pub attr: &'static Attribute,
    pub sub: Option<&'static Attribute>,
}

impl AttrRef {
    /// The attribute the reference ends at: `sub` if present, else `attr`.
    pub fn leaf(&self) -> &'static Attribute {
        self.sub.unwrap_or(self.attr)
    }

    /// True for enterprise extension attributes.
    pub fn is_extension(&self) -> bool {
        std::ptr::eq(self.schema, &ENTERPRISE_USER)
    }

    /// True for id, externalId and meta (and meta's sub-attributes).
    pub fn is_common(&self) -> bool {
        COMMON.iter().any(|a| std::ptr::eq(a, self.attr))
    }

    /// Key path in the canonical stored/rendered resource JSON, canonical case:
    /// `["name","givenName"]`, `["userName"]`,
    /// `[ENTERPRISE_USER_SCHEMA,"manager","value"]`, `["meta","lastModified"]`.
    pub fn json_path(&self) -> Vec<&'static str> {
        let mut path = Vec::with_capacity(3);
        if self.is_extension() {
            path.push(ENTERPRISE_USER_SCHEMA);
        }
        path.push(self.attr.name);
        if let Some(sub) = self.sub {
            path.push(sub.name);
        }
        path
    }
}

/// Split `"urn:...:User:name.givenName"` into `(Some(urn), "name.givenName")`; plain names
/// give `(None, s)`. The URN prefix is matched ASCII case-insensitively against the two known
/// schema ids and must be followed by `:` or the end of the string (a bare schema id gives
/// `(Some(urn), "")`).
pub fn split_urn(path: &str) -> (Option<&'static str>, &str) {
    for urn in [ENTERPRISE_USER_SCHEMA, USER_SCHEMA] {
        let Some(head) = path.get(..urn.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(urn) {
            continue;
        }
        let rest = &path[urn.len()..];
        if rest.is_empty() {
            return (Some(urn), rest);
        }
        if let Some(rest) = rest.strip_prefix(':') {
            return (Some(urn), rest);
        }
    }
    (None, path)
}

/// Resolve an attribute path as written in filters and PATCH paths, ASCII
/// case-insensitively: `"userName"`, `"name.givenName"`, `"NAME.GIVENNAME"`,
/// `"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName"`,
/// `"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"`,
/// `"meta.lastModified"`, `"id"`, `"emails.value"`, `"groups.$ref"`.
/// Unknown names, empty parts or more than one dot give `None`. Unqualified names are core
/// (or common) attributes only.
pub fn resolve(path: &str) -> Option<AttrRef> {
    let (urn, rest) = split_urn(path);
    let mut parts = rest.split('.');
    let attr = parts.next()?;
    let sub = parts.next();
    if parts.next().is_some() {
        return None;
    }
    resolve_parts(urn, attr, sub)
}

/// Like [`resolve`] with the parts already split: optional schema URN, attribute name,
/// optional sub-attribute name. A sub-attribute is only valid on a complex attribute.
pub fn resolve_parts(urn: Option<&str>, attr: &str, sub: Option<&str>) -> Option<AttrRef> {
    let (schema, found) = match urn {
        None => (&USER, USER.attribute(attr).or_else(|| find(COMMON, attr))?),
        Some(u) if u.eq_ignore_ascii_case(USER_SCHEMA) => {
            (&USER, USER.attribute(attr).or_else(|| find(COMMON, attr))?)
        }
        Some(u) if u.eq_ignore_ascii_case(ENTERPRISE_USER_SCHEMA) => {
            (&ENTERPRISE_USER, ENTERPRISE_USER.attribute(attr)?)
        }
        Some(_) => return None,
    };
    let sub = match sub {
        None => None,
        Some(s) => Some(found.sub(s)?),
    };
    Some(AttrRef {
        schema,
        attr: found,
        sub,
    })
}

/// Resolve an attribute path of a Group, as [`resolve`] does for Users: `displayName`,
/// `members`, `members.value`, `externalId`, `id`, `meta.created`, optionally prefixed
/// with the Group schema URN.
pub fn resolve_group(path: &str) -> Option<AttrRef> {
    let rest = match path.get(..GROUP_SCHEMA.len()) {
        Some(head) if head.eq_ignore_ascii_case(GROUP_SCHEMA) => {
            path[GROUP_SCHEMA.len()..].strip_prefix(':')?
        }
        _ => path,
    };
    let mut parts = rest.split('.');
    let name = parts.next()?;
    let sub = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let attr = GROUP.attribute(name).or_else(|| find(COMMON, name))?;
    let sub = match sub {
        None => None,
        Some(s) => Some(attr.sub(s)?),
    };
    Some(AttrRef {
        schema: &GROUP,
        attr,
        sub,
    })
}

// ---------------------------------------------------------------------------
// Value types
// ---------------------------------------------------------------------------

/// A boolean as a string: Entra sends `"True"`, `"False"` (any case; trimmed).
pub fn parse_bool(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Does this singular complex attribute also come as a list? Only the enterprise
/// `manager`, which Entra sends as `[{"value": id}]`; a list for any other singular
/// attribute (`name`) is a wrong type.
pub fn takes_list(attr: &Attribute) -> bool {
    std::ptr::eq(attr, &ENTERPRISE_ATTRS[5])
}

/// What one value of `attr` must be, when `v` is not a JSON value of its type (an
/// element, for multi-valued attributes); `None` when it fits. Null fits every type (it
/// means "no value"). Booleans may also be the strings of [`parse_bool`]. Nothing is
/// converted: a number for a string attribute is a client bug, and storing its text
/// would change data the client never meant to send.
pub fn type_mismatch(attr: &Attribute, v: &Value) -> Option<&'static str> {
    let fits = match (attr.ty, v) {
        (_, Value::Null) => true,
        (AttrType::Boolean, Value::Bool(_)) => true,
        (AttrType::Boolean, Value::String(s)) => parse_bool(s).is_some(),
        (
            AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::DateTime,
            Value::String(_),
        ) => true,
        (AttrType::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (AttrType::Decimal, Value::Number(_)) => true,
        (AttrType::Complex, Value::Object(_)) => true,
        _ => false,
    };
    (!fits).then_some(match attr.ty {
        AttrType::Boolean => "a boolean (true or false)",
        AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::DateTime => {
            "a string"
        }
        AttrType::Integer => "an integer",
        AttrType::Decimal => "a number",
        AttrType::Complex => "an object",
    })
}

/// The JSON type of `v`, for error details: "a number", "an array".
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------
// /Schemas representation (RFC 7643 §7)
// ---------------------------------------------------------------------------

fn attribute_json(a: &Attribute) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(a.name));
    m.insert("type".into(), json!(a.ty.as_str()));
    m.insert("multiValued".into(), json!(a.multi_valued));
    m.insert("description".into(), json!(a.description));
    m.insert("required".into(), json!(a.required));
    m.insert("caseExact".into(), json!(a.case_exact));
    m.insert("mutability".into(), json!(a.mutability.as_str()));
    m.insert("returned".into(), json!(a.returned.as_str()));
    m.insert("uniqueness".into(), json!(a.uniqueness.as_str()));
    if !a.canonical_values.is_empty() {
        m.insert("canonicalValues".into(), json!(a.canonical_values));
    }
    if a.ty == AttrType::Reference {
        m.insert("referenceTypes".into(), json!(a.reference_types));
    }
    if a.ty == AttrType::Complex {
        let subs: Vec<Value> = a.sub_attributes.iter().map(attribute_json).collect();
        m.insert("subAttributes".into(), Value::Array(subs));
    }
    Value::Object(m)
}

/// The RFC 7643 §7 schema resource served at `/Schemas/{id}`. `base` is the SCIM base URL
/// without a trailing slash, like `http://localhost:8080/scim/v2`.
pub fn schema_json(schema: &'static Schema, base: &str) -> Value {
    let attributes: Vec<Value> = schema.attributes.iter().map(attribute_json).collect();
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": attributes,
        "meta": {
            "resourceType": "Schema",
            "location": format!("{}/Schemas/{}", base.trim_end_matches('/'), schema.id),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_types_are_checked_without_conversion() {
        let user_name = USER.attribute("userName").unwrap();
        let active = USER.attribute("active").unwrap();
        let name = USER.attribute("name").unwrap();
        let manager = ENTERPRISE_USER.attribute("manager").unwrap();
        for v in [json!(123), json!(true), json!({"a": 1}), json!(["a"])] {
            assert_eq!(type_mismatch(user_name, &v), Some("a string"), "{v}");
        }
        assert_eq!(type_mismatch(user_name, &json!("a@b.c")), None);
        assert_eq!(type_mismatch(user_name, &Value::Null), None);
        for v in [json!(true), json!("False"), json!(" true "), json!("TRUE")] {
            assert_eq!(type_mismatch(active, &v), None, "{v}");
        }
        for v in [json!(1), json!("yes"), json!([true]), json!({})] {
            assert!(type_mismatch(active, &v).is_some(), "{v}");
        }
        for v in [json!("Ada"), json!(["Ada"]), json!(7)] {
            assert_eq!(type_mismatch(name, &v), Some("an object"), "{v}");
        }
        assert!(takes_list(manager));
        assert!(!takes_list(name));
    }

    fn path(p: &str) -> Vec<&'static str> {
        resolve(p)
            .unwrap_or_else(|| panic!("{p} should resolve"))
            .json_path()
    }

    #[test]
    fn resolves_plain_and_dotted_names_case_insensitively() {
        assert_eq!(path("userName"), vec!["userName"]);
        assert_eq!(path("USERNAME"), vec!["userName"]);
        assert_eq!(path("name.givenName"), vec!["name", "givenName"]);
        assert_eq!(path("NAME.GIVENNAME"), vec!["name", "givenName"]);
        assert_eq!(path("emails.value"), vec!["emails", "value"]);
        assert_eq!(path("Emails.Type"), vec!["emails", "type"]);
        assert_eq!(
            path("phonenumbers.primary"),
            vec!["phoneNumbers", "primary"]
        );
        assert_eq!(path("x509certificates"), vec!["x509Certificates"]);
    }

    #[test]
    fn resolves_urn_qualified_core_names() {
        assert_eq!(
            path("urn:ietf:params:scim:schemas:core:2.0:User:userName"),
            vec!["userName"]
        );
        assert_eq!(
            path("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName"),
            vec!["name", "givenName"]
        );
        assert_eq!(
            path("URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:roles"),
            vec!["roles"]
        );
        let r = resolve("urn:ietf:params:scim:schemas:core:2.0:User:roles").unwrap();
        assert!(!r.is_extension());
        assert!(std::ptr::eq(r.schema, &USER));
    }

    #[test]
    fn resolves_enterprise_names() {
        let r =
            resolve("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager").unwrap();
        assert!(r.is_extension());
        assert!(!r.is_common());
        assert_eq!(r.attr.name, "manager");
        assert!(r.sub.is_none());
        assert_eq!(r.leaf().ty, AttrType::Complex);
        assert_eq!(r.json_path(), vec![ENTERPRISE_USER_SCHEMA, "manager"]);

        assert_eq!(
            path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
            vec![ENTERPRISE_USER_SCHEMA, "manager", "value"]
        );
        assert_eq!(
            path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:EMPLOYEENUMBER"),
            vec![ENTERPRISE_USER_SCHEMA, "employeeNumber"]
        );
        assert_eq!(
            path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.$ref"),
            vec![ENTERPRISE_USER_SCHEMA, "manager", "$ref"]
        );
    }

    #[test]
    fn resolves_common_attributes() {
        for (p, expect) in [
            ("id", vec!["id"]),
            ("externalId", vec!["externalId"]),
            ("EXTERNALID", vec!["externalId"]),
            ("meta", vec!["meta"]),
            ("meta.lastModified", vec!["meta", "lastModified"]),
            ("meta.created", vec!["meta", "created"]),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:externalId",
                vec!["externalId"],
            ),
        ] {
            let r = resolve(p).unwrap();
            assert!(r.is_common(), "{p}");
            assert!(!r.is_extension(), "{p}");
            assert!(std::ptr::eq(r.schema, &USER), "{p}");
            assert_eq!(r.json_path(), expect, "{p}");
        }
        assert_eq!(
            resolve("meta.lastModified").unwrap().leaf().ty,
            AttrType::DateTime
        );
        assert!(resolve("id").unwrap().leaf().case_exact);
        assert_eq!(resolve("id").unwrap().leaf().returned, Returned::Always);
        assert!(!resolve("userName").unwrap().is_common());
    }

    #[test]
    fn resolves_ref_sub_attribute() {
        let r = resolve("groups.$ref").unwrap();
        assert_eq!(r.leaf().name, "$ref");
        assert_eq!(r.leaf().ty, AttrType::Reference);
        assert_eq!(r.json_path(), vec!["groups", "$ref"]);
        assert_eq!(path("GROUPS.$REF"), vec!["groups", "$ref"]);
    }

    #[test]
    fn rejects_unknown_and_malformed_names() {
        for p in [
            "",
            "foo",
            "name.foo",
            "name.givenName.x",
            "emails.value.x",
            "userName.x",
            "name.",
            ".name",
            "urn:ietf:params:scim:schemas:core:2.0:User:department",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:id",
            "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "department",
            "schemas",
            "meta.foo",
        ] {
            assert!(resolve(p).is_none(), "{p} should not resolve");
        }
    }

    #[test]
    fn resolve_parts_works_with_split_pieces() {
        let r = resolve_parts(Some(ENTERPRISE_USER_SCHEMA), "Manager", Some("VALUE")).unwrap();
        assert_eq!(
            r.json_path(),
            vec![ENTERPRISE_USER_SCHEMA, "manager", "value"]
        );
        let r = resolve_parts(None, "name", Some("familyName")).unwrap();
        assert_eq!(r.json_path(), vec!["name", "familyName"]);
        let r = resolve_parts(Some(&USER_SCHEMA.to_uppercase()), "active", None).unwrap();
        assert_eq!(r.leaf().ty, AttrType::Boolean);
        assert!(resolve_parts(Some("urn:x"), "active", None).is_none());
        assert!(resolve_parts(None, "active", Some("value")).is_none());
    }

    #[test]
    fn split_urn_cases() {
        assert_eq!(split_urn("userName"), (None, "userName"));
        assert_eq!(
            split_urn("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName"),
            (Some(USER_SCHEMA), "name.givenName")
        );
        assert_eq!(
            split_urn("URN:IETF:params:scim:schemas:extension:enterprise:2.0:USER:department"),
            (Some(ENTERPRISE_USER_SCHEMA), "department")
        );
        assert_eq!(
            split_urn(ENTERPRISE_USER_SCHEMA),
            (Some(ENTERPRISE_USER_SCHEMA), "")
        );
        assert_eq!(split_urn(USER_SCHEMA), (Some(USER_SCHEMA), ""));
        // Not followed by ':' -> not a URN prefix.
        assert_eq!(
            split_urn("urn:ietf:params:scim:schemas:core:2.0:Users"),
            (None, "urn:ietf:params:scim:schemas:core:2.0:Users")
        );
        // Multi-byte input must not panic on a char boundary.
        assert_eq!(split_urn("é"), (None, "é"));
        let s = "urn:ietf:params:scim:schemas:core:2.0:Useé";
        assert_eq!(split_urn(s), (None, s));
    }

    #[test]
    fn user_schema_matches_rfc() {
        let user_name = USER.attribute("username").unwrap();
        assert_eq!(user_name.name, "userName");
        assert!(user_name.required);
        assert!(!user_name.case_exact);
        assert_eq!(user_name.uniqueness, Uniqueness::Server);

        let password = USER.attribute("password").unwrap();
        assert_eq!(password.mutability, Mutability::WriteOnly);
        assert_eq!(password.returned, Returned::Never);

        let groups = USER.attribute("groups").unwrap();
        assert_eq!(groups.mutability, Mutability::ReadOnly);
        assert!(groups.multi_valued);

        let roles = USER.attribute("roles").unwrap();
        assert!(roles.multi_valued);
        assert_eq!(
            roles.sub("value").unwrap().canonical_values,
            &["admin", "maker", "contributor", "viewer"]
        );
        assert_eq!(roles.sub("primary").unwrap().ty, AttrType::Boolean);

        assert_eq!(USER.attribute("active").unwrap().ty, AttrType::Boolean);
        assert_eq!(
            USER.attribute("emails")
                .unwrap()
                .sub("type")
                .unwrap()
                .canonical_values,
            &["work", "home", "other"]
        );
        let addr: Vec<&str> = USER
            .attribute("addresses")
            .unwrap()
            .sub_attributes
            .iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(
            addr,
            [
                "formatted",
                "streetAddress",
                "locality",
                "region",
                "postalCode",
                "country",
                "type",
                "primary"
            ]
        );
        // Common attributes are not schema attributes.
        assert!(USER.attribute("id").is_none());
        assert!(USER.attribute("meta").is_none());

        let names: Vec<&str> = USER.attributes.iter().map(|a| a.name).collect();
        for n in [
            "userName",
            "name",
            "displayName",
            "nickName",
            "profileUrl",
            "title",
            "userType",
            "preferredLanguage",
            "locale",
            "timezone",
            "active",
            "password",
            "emails",
            "phoneNumbers",
            "ims",
            "photos",
            "addresses",
            "groups",
            "entitlements",
            "roles",
            "x509Certificates",
        ] {
            assert!(names.contains(&n), "{n}");
        }
    }

    #[test]
    fn enterprise_schema_matches_rfc() {
        let manager = ENTERPRISE_USER.attribute("MANAGER").unwrap();
        assert_eq!(manager.ty, AttrType::Complex);
        assert!(!manager.multi_valued);
        assert_eq!(
            manager.sub("displayname").unwrap().mutability,
            Mutability::ReadOnly
        );
        assert_eq!(manager.sub("$ref").unwrap().reference_types, &["User"]);
        for n in [
            "employeeNumber",
            "costCenter",
            "organization",
            "division",
            "department",
        ] {
            assert_eq!(ENTERPRISE_USER.attribute(n).unwrap().ty, AttrType::String);
        }
    }

    #[test]
    fn all_schemas_lists_user_enterprise_then_group() {
        let ids: Vec<&str> = all_schemas().iter().map(|s| s.id).collect();
        assert_eq!(ids, [USER_SCHEMA, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA]);
    }

    #[test]
    fn resolves_group_names() {
        let r = resolve_group("MEMBERS.value").unwrap();
        assert_eq!(r.json_path(), ["members", "value"]);
        let r = resolve_group("urn:ietf:params:scim:schemas:core:2.0:Group:displayName").unwrap();
        assert_eq!(r.json_path(), ["displayName"]);
        assert!(resolve_group("externalId").unwrap().is_common());
        assert!(resolve_group("userName").is_none());
        assert!(resolve_group("members.nope").is_none());
        assert!(resolve_group("urn:ietf:params:scim:schemas:core:2.0:User:displayName").is_none());
    }

    #[test]
    fn schema_json_user() {
        let v = schema_json(&USER, "http://localhost:8080/scim/v2");
        assert_eq!(v["id"], USER_SCHEMA);
        assert_eq!(v["name"], "User");
        assert_eq!(v["schemas"], json!([SCHEMA_SCHEMA]));
        assert_eq!(v["meta"]["resourceType"], "Schema");
        assert_eq!(
            v["meta"]["location"],
            format!("http://localhost:8080/scim/v2/Schemas/{USER_SCHEMA}")
        );
        let attrs = v["attributes"].as_array().unwrap();
        assert_eq!(attrs.len(), USER.attributes.len());
        assert!(
            attrs
                .iter()
                .all(|a| a["name"] != "id" && a["name"] != "meta")
        );

        let user_name = &attrs[0];
        assert_eq!(
            user_name,
            &json!({
                "name": "userName",
                "type": "string",
                "multiValued": false,
                "description": USER.attributes[0].description,
                "required": true,
                "caseExact": false,
                "mutability": "readWrite",
                "returned": "default",
                "uniqueness": "server",
            })
        );

        let by_name = |n: &str| attrs.iter().find(|a| a["name"] == n).unwrap().clone();
        let roles = by_name("roles");
        assert_eq!(roles["type"], "complex");
        assert_eq!(roles["multiValued"], true);
        let value = roles["subAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "value")
            .unwrap();
        assert_eq!(
            value["canonicalValues"],
            json!(["admin", "maker", "contributor", "viewer"])
        );
        assert!(value.get("referenceTypes").is_none());
        assert!(value.get("subAttributes").is_none());

        let password = by_name("password");
        assert_eq!(password["mutability"], "writeOnly");
        assert_eq!(password["returned"], "never");

        let profile = by_name("profileUrl");
        assert_eq!(profile["type"], "reference");
        assert_eq!(profile["referenceTypes"], json!(["external"]));

        let active = by_name("active");
        assert_eq!(active["type"], "boolean");
        assert!(active.get("canonicalValues").is_none());

        let groups = by_name("groups");
        assert_eq!(groups["mutability"], "readOnly");
        let gref = groups["subAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "$ref")
            .unwrap();
        assert_eq!(gref["type"], "reference");
        assert_eq!(gref["referenceTypes"], json!(["User", "Group"]));

        let x509 = by_name("x509Certificates");
        assert_eq!(x509["subAttributes"][0]["type"], "binary");
    }

    #[test]
    fn schema_json_enterprise_and_trailing_slash() {
        let v = schema_json(&ENTERPRISE_USER, "https://x.example/scim/v2/");
        assert_eq!(v["id"], ENTERPRISE_USER_SCHEMA);
        assert_eq!(
            v["meta"]["location"],
            format!("https://x.example/scim/v2/Schemas/{ENTERPRISE_USER_SCHEMA}")
        );
        let names: Vec<&str> = v["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "employeeNumber",
                "costCenter",
                "organization",
                "division",
                "department",
                "manager"
            ]
        );
        let manager = &v["attributes"][5];
        let subs: Vec<&str> = manager["subAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(subs, ["value", "$ref", "displayName"]);
        assert_eq!(manager["subAttributes"][2]["mutability"], "readOnly");
    }

    #[test]
    fn every_complex_attribute_has_sub_attributes_and_only_complex_do() {
        for schema in all_schemas() {
            for a in schema.attributes.iter().chain(COMMON.iter()) {
                assert_eq!(
                    a.ty == AttrType::Complex,
                    !a.sub_attributes.is_empty(),
                    "{}",
                    a.name
                );
                for s in a.sub_attributes {
                    assert!(s.sub_attributes.is_empty());
                    assert_ne!(s.ty, AttrType::Complex);
                }
            }
        }
    }
}
