//! SCIM filters (RFC 7644 §3.4.2.2): a parser that resolves attribute paths against the
//! User schema into a typed AST, and an in-memory evaluator over rendered User JSON.
//!
//! Leniencies, on purpose, because identity providers send them: keywords and attribute
//! names in any case, `true`/`false`/`null` in any case, extra whitespace, string booleans
//! (`primary eq "True"`) on boolean attributes, numbers on string attributes.
//! Limits: input longer than [`MAX_FILTER_LEN`] bytes or nested deeper than [`MAX_DEPTH`]
//! (parentheses, `not`, `[...]`) is rejected with `invalidFilter`, so no input can exhaust
//! the stack. Positions in error details are 0-based character offsets.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde_json::{Number, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::scim::error::ScimError;
use crate::scim::schema::{self, AttrRef, AttrType, Attribute, Mutability};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 8 * 1024;
/// Deepest nesting of parentheses, `not (...)` and `[...]` accepted.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    /// The operator for a keyword, any case.
    pub fn from_keyword(word: &str) -> Option<CompareOp> {
        const OPS: [(&str, CompareOp); 9] = [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ];
        OPS.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(word))
            .map(|(_, op)| *op)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn is_ordering(self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
    }

    fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
}

/// A comparison value, already typed for the attribute it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Str(String),
    Num(Number),
    Bool(bool),
    DateTime(OffsetDateTime),
    Null,
}

/// Resolved filter AST. Inside a `ValuePath`, the inner filter's AttrRefs have
/// `attr` = the multi-valued parent and `sub` = `Some(sub-attribute)`.
/// `emails.value eq "x"` (no brackets) is `Compare { attr: emails+value, .. }`: the same
/// meaning as `emails[value eq "x"]`.
#[derive(Debug, Clone)]
pub enum Filter {
    Compare {
        attr: AttrRef,
        op: CompareOp,
        value: CompValue,
    },
    Present {
        attr: AttrRef,
    },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    ValuePath {
        attr: AttrRef,
        filter: Box<Filter>,
    },
}

/// Attribute references are equal when they point at the same static schema entries.
fn same_attr(a: &AttrRef, b: &AttrRef) -> bool {
    std::ptr::eq(a.schema, b.schema)
        && std::ptr::eq(a.attr, b.attr)
        && match (a.sub, b.sub) {
            (None, None) => true,
            (Some(x), Some(y)) => std::ptr::eq(x, y),
            _ => false,
        }
}

impl PartialEq for Filter {
    fn eq(&self, other: &Filter) -> bool {
        match (self, other) {
            (
                Filter::Compare { attr, op, value },
                Filter::Compare {
                    attr: a2,
                    op: o2,
                    value: v2,
                },
            ) => same_attr(attr, a2) && op == o2 && value == v2,
            (Filter::Present { attr }, Filter::Present { attr: a2 }) => same_attr(attr, a2),
            (Filter::And(a, b), Filter::And(c, d)) | (Filter::Or(a, b), Filter::Or(c, d)) => {
                a == c && b == d
            }
            (Filter::Not(a), Filter::Not(b)) => a == b,
            (
                Filter::ValuePath { attr, filter },
                Filter::ValuePath {
                    attr: a2,
                    filter: f2,
                },
            ) => same_attr(attr, a2) && filter == f2,
            _ => false,
        }
    }
}

/// Parse a filter and resolve it against the User schema (core, enterprise extension and
/// common attributes). Every error is `400 invalidFilter` with a detail naming what went
/// wrong and where.
pub fn parse(input: &str) -> Result<Filter, ScimError> {
    parse_with(input, schema::resolve)
}

/// Parse a filter on Groups (`displayName`, `members.value`, `members[value eq ..]`,
/// `externalId`, `id`, `meta.*`), like [`parse`].
pub fn parse_group(input: &str) -> Result<Filter, ScimError> {
    parse_with(input, schema::resolve_group)
}

fn parse_with(input: &str, resolve: fn(&str) -> Option<AttrRef>) -> Result<Filter, ScimError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_filter(format!(
            "filter is too long ({} bytes, at most {MAX_FILTER_LEN})",
            input.len()
        )));
    }
    let mut p = Parser::new(input, None);
    p.resolve = resolve;
    if matches!(p.peek()?.tok, Tok::End) {
        return Err(ScimError::invalid_filter("empty filter"));
    }
    let filter = p.parse_or()?;
    let tok = p.next()?;
    match tok.tok {
        Tok::End => Ok(filter),
        Tok::RParen => Err(p.error_at(tok.start, "unbalanced ')'")),
        _ => Err(p.unexpected(&tok, "'and', 'or' or the end of the filter")),
    }
}

/// Parse the `[valFilter]` that starts `input` (which must begin with `[`), resolving
/// names as sub-attributes of `parent`. Returns the filter and the input after the `]`.
/// Used for PATCH paths such as `emails[type eq "work"].value`.
pub(crate) fn parse_bracket_filter(
    parent: AttrRef,
    input: &str,
) -> Result<(Filter, &str), ScimError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_filter(format!(
            "value filter is too long ({} bytes, at most {MAX_FILTER_LEN})",
            input.len()
        )));
    }
    if parent.sub.is_some() || parent.attr.ty != AttrType::Complex {
        return Err(ScimError::invalid_filter(format!(
            "'{}' is not a complex attribute: a '[...]' value filter is not allowed on it",
            display_name(&parent)
        )));
    }
    let mut p = Parser::new(input, Some(parent));
    let open = p.next()?;
    if !matches!(open.tok, Tok::LBrack) {
        return Err(p.unexpected(&open, "'['"));
    }
    p.enter(open.start)?;
    let filter = p.parse_or()?;
    p.expect_close(Tok::RBrack, "']'")?;
    // `expect_close` consumed exactly the ']' token and nothing was peeked after it.
    let rest = input.get(p.lexer.pos..).unwrap_or("");
    Ok((filter, rest))
}

/// Evaluate a filter against a rendered User resource (with `id`, `meta`, canonical
/// attributes and the enterprise extension object).
///
/// Semantics: string comparisons are case-insensitive unless the attribute is caseExact;
/// a multi-valued attribute matches when any value matches; `pr` means present and not
/// null, `""`, `[]` or `{}`. `ne` is defined as the negation of `eq`, so it is true when
/// the attribute is absent and, on a multi-valued attribute, true only when no value is
/// equal (RFC 7644 leaves both open). `eq null` is true when the attribute is absent.
/// Ordering operators and `co`/`sw`/`ew` on an absent attribute are false.
pub fn matches(filter: &Filter, resource: &Value) -> bool {
    eval(filter, resource, None)
}

/// Evaluate the inner filter of a value path (or of a PATCH path) against one element of
/// a multi-valued complex attribute.
pub(crate) fn matches_element(filter: &Filter, element: &Value) -> bool {
    eval(filter, element, Some(element))
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    LParen,
    RParen,
    LBrack,
    RBrack,
    Str(String),
    Word(&'a str),
    End,
}

#[derive(Debug, Clone)]
struct Token<'a> {
    tok: Tok<'a>,
    /// Byte offset in the input.
    start: usize,
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | '[' | ']' | '"')
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        self.input.get(self.pos..).unwrap_or("")
    }

    fn next(&mut self) -> Result<Token<'a>, ScimError> {
        let rest = self.rest();
        let trimmed = rest.trim_start();
        self.pos += rest.len() - trimmed.len();
        let start = self.pos;
        let Some(c) = trimmed.chars().next() else {
            return Ok(Token {
                tok: Tok::End,
                start,
            });
        };
        let simple = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBrack),
            ']' => Some(Tok::RBrack),
            _ => None,
        };
        if let Some(tok) = simple {
            self.pos += 1;
            return Ok(Token { tok, start });
        }
        if c == '"' {
            return self.string(start);
        }
        let len = trimmed
            .char_indices()
            .find(|&(_, c)| !is_word_char(c))
            .map_or(trimmed.len(), |(i, _)| i);
        let word = trimmed.get(..len).unwrap_or("");
        self.pos += len;
        Ok(Token {
            tok: Tok::Word(word),
            start,
        })
    }

    /// A JSON string literal starting at `start` (the opening quote).
    fn string(&mut self, start: usize) -> Result<Token<'a>, ScimError> {
        let body = self.input.get(start + 1..).unwrap_or("");
        let mut escaped = false;
        let mut end = None;
        for (i, c) in body.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(start + 1 + i);
                break;
            }
        }
        let Some(end) = end else {
            return Err(ScimError::invalid_filter(format!(
                "unterminated string starting at position {}",
                char_pos(self.input, start)
            )));
        };
        let literal = self.input.get(start..=end).unwrap_or("");
        let decoded: String = serde_json::from_str(literal).map_err(|e| {
            ScimError::invalid_filter(format!(
                "invalid string {} at position {}: {e}",
                shorten(literal),
                char_pos(self.input, start)
            ))
        })?;
        if decoded.contains('\0') {
            return Err(ScimError::invalid_filter(format!(
                "the string at position {} contains a NUL character",
                char_pos(self.input, start)
            )));
        }
        self.pos = end + 1;
        Ok(Token {
            tok: Tok::Str(decoded),
            start,
        })
    }
}

fn char_pos(input: &str, byte: usize) -> usize {
    input.get(..byte).map_or(byte, |s| s.chars().count())
}

fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

fn describe(tok: &Tok<'_>) -> String {
    match tok {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBrack => "'['".into(),
        Tok::RBrack => "']'".into(),
        Tok::Str(s) => format!("string \"{}\"", shorten(s)),
        Tok::Word(w) => format!("'{}'", shorten(w)),
        Tok::End => "end of filter".into(),
    }
}

fn display_name(r: &AttrRef) -> String {
    let mut name = String::new();
    if r.is_extension() {
        name.push_str(r.schema.id);
        name.push(':');
    }
    name.push_str(r.attr.name);
    if let Some(sub) = r.sub {
        name.push('.');
        name.push_str(sub.name);
    }
    name
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

/// A comparison value as written, before typing against the attribute.
enum Raw {
    Str(String),
    Num(Number),
    Bool(bool),
    Null,
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token<'a>>,
    depth: usize,
    /// Set inside `attr[...]`: names resolve as sub-attributes of this attribute.
    parent: Option<AttrRef>,
    /// How names resolve outside brackets: against the User or the Group schema.
    resolve: fn(&str) -> Option<AttrRef>,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str, parent: Option<AttrRef>) -> Self {
        Parser {
            lexer: Lexer { input, pos: 0 },
            peeked: None,
            depth: 0,
            parent,
            resolve: schema::resolve,
        }
    }

    fn peek(&mut self) -> Result<&Token<'a>, ScimError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next()?);
        }
        match &self.peeked {
            Some(t) => Ok(t),
            None => Err(ScimError::invalid_filter("internal lexer error")),
        }
    }

    fn next(&mut self) -> Result<Token<'a>, ScimError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next(),
        }
    }

    fn peek_keyword(&mut self, kw: &str) -> Result<bool, ScimError> {
        Ok(matches!(&self.peek()?.tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw)))
    }

    fn error_at(&self, byte: usize, what: &str) -> ScimError {
        ScimError::invalid_filter(format!(
            "{what} at position {}",
            char_pos(self.lexer.input, byte)
        ))
    }

    fn unexpected(&self, tok: &Token<'_>, expected: &str) -> ScimError {
        let what = if tok.tok == Tok::End {
            "unexpected end of filter".to_owned()
        } else {
            format!("unexpected {}", describe(&tok.tok))
        };
        ScimError::invalid_filter(format!(
            "{what} at position {}, expected {expected}",
            char_pos(self.lexer.input, tok.start)
        ))
    }

    fn enter(&mut self, at: usize) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(at, &format!("filter nested deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    fn expect_close(&mut self, want: Tok<'static>, name: &str) -> Result<(), ScimError> {
        let tok = self.next()?;
        if tok.tok != want {
            return Err(self.unexpected(&tok, &format!("{name} or 'and'/'or'")));
        }
        self.depth = self.depth.saturating_sub(1);
        Ok(())
    }

    /// filter = andExp *("or" andExp)
    fn parse_or(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.parse_and()?;
        while self.peek_keyword("or")? {
            self.next()?;
            let right = self.parse_and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// andExp = unary *("and" unary): "and" binds tighter than "or".
    fn parse_and(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.parse_unary()?;
        while self.peek_keyword("and")? {
            self.next()?;
            let right = self.parse_unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// unary = "not" "(" filter ")" / "(" filter ")" / attrExp / valuePath
    fn parse_unary(&mut self) -> Result<Filter, ScimError> {
        let tok = self.next()?;
        match tok.tok {
            Tok::LParen => {
                self.enter(tok.start)?;
                let inner = self.parse_or()?;
                self.expect_close(Tok::RParen, "')'")?;
                Ok(inner)
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("not") => {
                let open = self.next()?;
                if open.tok != Tok::LParen {
                    return Err(self.unexpected(&open, "'(' after 'not'"));
                }
                self.enter(open.start)?;
                let inner = self.parse_or()?;
                self.expect_close(Tok::RParen, "')'")?;
                Ok(Filter::Not(Box::new(inner)))
            }
            Tok::Word(w) => self.parse_attr_exp(w, tok.start),
            _ => Err(self.unexpected(&tok, "an attribute name, '(' or 'not'")),
        }
    }

    fn parse_attr_exp(&mut self, name: &'a str, at: usize) -> Result<Filter, ScimError> {
        let tok = self.next()?;
        match tok.tok {
            Tok::LBrack => self.parse_value_path(name, at, tok.start),
            Tok::Word(w) if w.eq_ignore_ascii_case("pr") => {
                let attr = self.resolve_name(name, at)?;
                Ok(Filter::Present { attr })
            }
            Tok::Word(w) => {
                let Some(op) = CompareOp::from_keyword(w) else {
                    return Err(self.unexpected(
                        &tok,
                        &format!(
                            "an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after '{}'",
                            shorten(name)
                        ),
                    ));
                };
                let value_tok = self.next()?;
                let raw = self.raw_value(&value_tok, op)?;
                let attr = self.resolve_name(name, at)?;
                let attr = self.comparable(attr, op, at)?;
                let value = self.typed_value(&attr, op, raw, value_tok.start)?;
                Ok(Filter::Compare { attr, op, value })
            }
            _ => Err(self.unexpected(
                &tok,
                &format!(
                    "an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) or '[' after '{}'",
                    shorten(name)
                ),
            )),
        }
    }

    fn parse_value_path(
        &mut self,
        name: &'a str,
        at: usize,
        open: usize,
    ) -> Result<Filter, ScimError> {
        if self.parent.is_some() {
            return Err(self.error_at(open, "nested '[' is not allowed inside a value filter"));
        }
        let attr = self.resolve_name(name, at)?;
        if attr.sub.is_some() || attr.attr.ty != AttrType::Complex {
            return Err(self.error_at(
                open,
                &format!(
                    "'[' after '{}', which is not a complex attribute",
                    display_name(&attr)
                ),
            ));
        }
        self.enter(open)?;
        self.parent = Some(attr);
        let inner = self.parse_or()?;
        self.expect_close(Tok::RBrack, "']'")?;
        self.parent = None;
        if let Tok::Word(w) = &self.peek()?.tok
            && w.starts_with('.')
        {
            let w = shorten(w);
            let at = self.peek()?.start;
            return Err(self.error_at(
                at,
                &format!(
                    "'{w}' after ']' is not allowed in a filter (only in PATCH paths); \
                     write the condition inside the brackets"
                ),
            ));
        }
        Ok(Filter::ValuePath {
            attr,
            filter: Box::new(inner),
        })
    }

    fn resolve_name(&self, name: &str, at: usize) -> Result<AttrRef, ScimError> {
        let resolved = match self.parent {
            Some(parent) => match parent.attr.sub(name) {
                Some(sub) => AttrRef {
                    sub: Some(sub),
                    ..parent
                },
                None => {
                    return Err(self.error_at(
                        at,
                        &format!(
                            "unknown sub-attribute '{}' of '{}'",
                            shorten(name),
                            display_name(&parent)
                        ),
                    ));
                }
            },
            None => match (self.resolve)(name) {
                Some(r) => r,
                None => {
                    return Err(
                        self.error_at(at, &format!("unknown attribute '{}'", shorten(name)))
                    );
                }
            },
        };
        if resolved.attr.mutability == Mutability::WriteOnly
            || resolved.leaf().mutability == Mutability::WriteOnly
        {
            return Err(self.error_at(
                at,
                &format!(
                    "attribute '{}' cannot be filtered on",
                    display_name(&resolved)
                ),
            ));
        }
        Ok(resolved)
    }

    /// A complex attribute cannot be compared directly, except a multi-valued one with a
    /// `value` sub-attribute (`emails eq "x"` means `emails.value eq "x"`).
    fn comparable(&self, attr: AttrRef, op: CompareOp, at: usize) -> Result<AttrRef, ScimError> {
        if attr.leaf().ty != AttrType::Complex {
            return Ok(attr);
        }
        if attr.attr.multi_valued
            && let Some(value) = attr.attr.sub("value")
        {
            return Ok(AttrRef {
                sub: Some(value),
                ..attr
            });
        }
        Err(self.error_at(
            at,
            &format!(
                "cannot apply '{}' to complex attribute '{}'; compare a sub-attribute \
                 such as '{}.{}'",
                op.as_str(),
                display_name(&attr),
                attr.attr.name,
                attr.attr.sub_attributes.first().map_or("value", |s| s.name)
            ),
        ))
    }

    fn raw_value(&self, tok: &Token<'_>, op: CompareOp) -> Result<Raw, ScimError> {
        let expected = format!(
            "a value (a quoted string, number, true, false or null) after '{}'",
            op.as_str()
        );
        match &tok.tok {
            Tok::Str(s) => Ok(Raw::Str(s.clone())),
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Ok(Raw::Bool(true)),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Ok(Raw::Bool(false)),
            Tok::Word(w) if w.eq_ignore_ascii_case("null") => Ok(Raw::Null),
            Tok::Word(w) if w.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
                serde_json::from_str::<Number>(w)
                    .map(Raw::Num)
                    .map_err(|_| {
                        self.error_at(tok.start, &format!("invalid number '{}'", shorten(w)))
                    })
            }
            _ => Err(self.unexpected(tok, &expected)),
        }
    }

    fn typed_value(
        &self,
        attr: &AttrRef,
        op: CompareOp,
        raw: Raw,
        at: usize,
    ) -> Result<CompValue, ScimError> {
        let leaf = attr.leaf();
        let name = display_name(attr);
        let type_name = leaf.ty.as_str();
        let bad = |what: String| self.error_at(at, &what);
        if op.is_substring() {
            if !matches!(
                leaf.ty,
                AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::DateTime
            ) {
                return Err(bad(format!(
                    "operator '{}' is not supported on {type_name} attribute '{name}'",
                    op.as_str()
                )));
            }
            return match raw {
                Raw::Str(s) => Ok(CompValue::Str(s)),
                _ => Err(bad(format!(
                    "operator '{}' needs a quoted string value",
                    op.as_str()
                ))),
            };
        }
        if op.is_ordering() {
            if matches!(
                leaf.ty,
                AttrType::Boolean | AttrType::Complex | AttrType::Binary
            ) {
                return Err(bad(format!(
                    "operator '{}' is not supported on {type_name} attribute '{name}'",
                    op.as_str()
                )));
            }
            if matches!(raw, Raw::Null) {
                return Err(bad(format!(
                    "operator '{}' cannot compare with null",
                    op.as_str()
                )));
            }
        }
        if matches!(raw, Raw::Null) {
            return Ok(CompValue::Null);
        }
        match leaf.ty {
            AttrType::Boolean => match raw {
                Raw::Bool(b) => Ok(CompValue::Bool(b)),
                Raw::Str(s) if s.trim().eq_ignore_ascii_case("true") => Ok(CompValue::Bool(true)),
                Raw::Str(s) if s.trim().eq_ignore_ascii_case("false") => Ok(CompValue::Bool(false)),
                _ => Err(bad(format!(
                    "boolean attribute '{name}' needs true or false"
                ))),
            },
            AttrType::DateTime => match raw {
                Raw::Str(s) => OffsetDateTime::parse(&s, &Rfc3339)
                    .map(CompValue::DateTime)
                    .map_err(|_| {
                        bad(format!(
                            "'{}' is not an RFC 3339 date-time (for '{name}')",
                            shorten(&s)
                        ))
                    }),
                _ => Err(bad(format!(
                    "dateTime attribute '{name}' needs a quoted RFC 3339 date-time"
                ))),
            },
            AttrType::Integer | AttrType::Decimal => match raw {
                Raw::Num(n) => Ok(CompValue::Num(n)),
                Raw::Str(s) => serde_json::from_str::<Number>(s.trim())
                    .map(CompValue::Num)
                    .map_err(|_| bad(format!("{type_name} attribute '{name}' needs a number"))),
                _ => Err(bad(format!(
                    "{type_name} attribute '{name}' needs a number"
                ))),
            },
            AttrType::String | AttrType::Reference | AttrType::Binary => match raw {
                Raw::Str(s) => Ok(CompValue::Str(s)),
                Raw::Num(n) => Ok(CompValue::Str(n.to_string())),
                _ => Err(bad(format!(
                    "string attribute '{name}' needs a quoted string value"
                ))),
            },
            AttrType::Complex => Err(bad(format!("cannot compare complex attribute '{name}'"))),
        }
    }
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

fn eval(filter: &Filter, root: &Value, element: Option<&Value>) -> bool {
    match filter {
        Filter::And(a, b) => eval(a, root, element) && eval(b, root, element),
        Filter::Or(a, b) => eval(a, root, element) || eval(b, root, element),
        Filter::Not(f) => !eval(f, root, element),
        Filter::Present { attr } => values(attr, root, element).into_iter().any(is_present),
        Filter::Compare { attr, op, value } => {
            compare(attr.leaf(), *op, value, &values(attr, root, element))
        }
        Filter::ValuePath { attr, filter } => collect(root, &attr.json_path())
            .into_iter()
            .any(|e| eval(filter, root, Some(e))),
    }
}

/// The values an attribute reference denotes. Inside a value path, names are
/// sub-attributes of the current element.
fn values<'v>(attr: &AttrRef, root: &'v Value, element: Option<&'v Value>) -> Vec<&'v Value> {
    match (element, attr.sub) {
        (Some(e), Some(sub)) => collect(e, &[sub.name]),
        _ => collect(root, &attr.json_path()),
    }
}

/// Follow `path` through objects, flattening arrays at every step.
fn collect<'v>(root: &'v Value, path: &[&str]) -> Vec<&'v Value> {
    let mut current = vec![root];
    for key in path {
        let mut next = Vec::new();
        for v in current {
            match get_ci(v, key) {
                Some(Value::Array(items)) => next.extend(items.iter()),
                Some(x) => next.push(x),
                None => {}
            }
        }
        current = next;
    }
    current
}

/// Object member `key`, exact case first, then ASCII case-insensitively.
pub(crate) fn get_ci<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(is_present),
        Value::Object(o) => o.values().any(is_present),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn compare(leaf: &Attribute, op: CompareOp, value: &CompValue, vals: &[&Value]) -> bool {
    match (op, value) {
        (CompareOp::Ne, _) => !compare(leaf, CompareOp::Eq, value, vals),
        (CompareOp::Eq, CompValue::Null) => !vals.iter().any(|v| is_present(v)),
        _ => vals.iter().any(|v| compare_one(leaf, op, value, v)),
    }
}

fn ordering_matches(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Ne | CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn fold<'s>(s: &'s str, case_exact: bool) -> Cow<'s, str> {
    if case_exact {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

fn compare_one(leaf: &Attribute, op: CompareOp, value: &CompValue, stored: &Value) -> bool {
    match value {
        CompValue::Str(want) => {
            let stored: Cow<'_, str> = match stored {
                Value::String(s) => Cow::Borrowed(s),
                Value::Number(n) => Cow::Owned(n.to_string()),
                _ => return false,
            };
            let have = fold(&stored, leaf.case_exact);
            let want = fold(want, leaf.case_exact);
            match op {
                CompareOp::Co => have.contains(want.as_ref()),
                CompareOp::Sw => have.starts_with(want.as_ref()),
                CompareOp::Ew => have.ends_with(want.as_ref()),
                _ => ordering_matches(op, have.as_ref().cmp(want.as_ref())),
            }
        }
        CompValue::Num(want) => {
            let have = match stored {
                Value::Number(n) => n.clone(),
                Value::String(s) => match serde_json::from_str::<Number>(s.trim()) {
                    Ok(n) => n,
                    Err(_) => return false,
                },
                _ => return false,
            };
            cmp_numbers(&have, want).is_some_and(|ord| ordering_matches(op, ord))
        }
        CompValue::Bool(want) => {
            let have = match stored {
                Value::Bool(b) => *b,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return false,
            };
            op == CompareOp::Eq && have == *want
        }
        CompValue::DateTime(want) => {
            let Some(have) = stored
                .as_str()
                .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
            else {
                return false;
            };
            ordering_matches(op, have.cmp(want))
        }
        CompValue::Null => false,
    }
}

fn cmp_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod nul_tests {
    use super::parse;

    #[test]
    fn nul_characters_are_refused() {
        let err = parse("userName eq \"a\\u0000b\"").unwrap_err();
        assert!(err.detail.contains("NUL"), "{}", err.detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::error::ScimType;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, resolve};
    use proptest::prelude::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": [schema::USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "AbC-123",
            "userName": "Barbara.Jensen@Example.com",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "displayName": "Babs",
            "title": "",
            "active": true,
            "emails": [
                {"value": "babs@work.example", "type": "work", "primary": false},
                {"value": "babs@example.com", "type": "home", "primary": true}
            ],
            "roles": [{"value": "admin", "type": "", "primary": true}],
            "phoneNumbers": [],
            ENTERPRISE_USER_SCHEMA: {
                "employeeNumber": "42",
                "department": "Tour Operations",
                "manager": {"value": "mgr-1", "displayName": "Boss"}
            },
            "meta": {
                "resourceType": "User",
                "created": "2024-01-01T10:00:00Z",
                "lastModified": "2024-06-01T12:30:00+02:00",
                "location": "https://x/scim/v2/Users/2819c223"
            }
        })
    }

    fn m(filter: &str) -> bool {
        let f = parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        matches(&f, &user())
    }

    fn err(filter: &str) -> ScimError {
        match parse(filter) {
            Ok(f) => panic!("{filter} should fail, parsed as {f:?}"),
            Err(e) => {
                assert_eq!(e.status, 400, "{filter}");
                assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{filter}");
                e
            }
        }
    }

    fn attr(path: &str) -> AttrRef {
        resolve(path).unwrap()
    }

    fn cmp(path: &str, op: CompareOp, value: CompValue) -> Filter {
        Filter::Compare {
            attr: attr(path),
            op,
            value,
        }
    }

    fn s(v: &str) -> CompValue {
        CompValue::Str(v.to_owned())
    }

    // ----- parsing -----

    #[test]
    fn parses_okta_user_name_lookup() {
        assert_eq!(
            parse(r#"userName eq "a@b.c""#).unwrap(),
            cmp("userName", CompareOp::Eq, s("a@b.c"))
        );
    }

    #[test]
    fn keywords_and_names_in_any_case() {
        let expected = Filter::And(
            Box::new(cmp("userName", CompareOp::Eq, s("x"))),
            Box::new(cmp("active", CompareOp::Eq, CompValue::Bool(true))),
        );
        for f in [
            r#"USERNAME EQ "x" AND ACTIVE EQ TRUE"#,
            r#"UserName Eq "x" And Active eQ True"#,
            r#"username eq "x" and active eq true"#,
            "  userName   eq   \"x\"\tand  active eq true  ",
        ] {
            assert_eq!(parse(f).unwrap(), expected, "{f}");
        }
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let a = || cmp("userName", CompareOp::Eq, s("a"));
        let b = || cmp("title", CompareOp::Eq, s("b"));
        let c = || Filter::Present {
            attr: attr("displayName"),
        };
        assert_eq!(
            parse(r#"userName eq "a" or title eq "b" and displayName pr"#).unwrap(),
            Filter::Or(
                Box::new(a()),
                Box::new(Filter::And(Box::new(b()), Box::new(c())))
            )
        );
        assert_eq!(
            parse(r#"(userName eq "a" or title eq "b") and displayName pr"#).unwrap(),
            Filter::And(
                Box::new(Filter::Or(Box::new(a()), Box::new(b()))),
                Box::new(c())
            )
        );
    }

    #[test]
    fn not_needs_parentheses() {
        let expected = Filter::Not(Box::new(cmp(
            "active",
            CompareOp::Eq,
            CompValue::Bool(false),
        )));
        assert_eq!(parse("not (active eq false)").unwrap(), expected);
        assert_eq!(parse("NOT(active eq false)").unwrap(), expected);
        let e = err("not active eq false");
        assert!(e.detail.contains("'(' after 'not'"), "{}", e.detail);
    }

    #[test]
    fn string_escapes_are_decoded() {
        assert_eq!(
            parse(r#"displayName eq "a\"b\\c\u00e9\n/""#).unwrap(),
            cmp("displayName", CompareOp::Eq, s("a\"b\\cé\n/"))
        );
        // Brackets and parentheses inside strings are not tokens.
        assert_eq!(
            parse(r#"displayName eq "x ] ( [ ) y""#).unwrap(),
            cmp("displayName", CompareOp::Eq, s("x ] ( [ ) y"))
        );
        err(r#"displayName eq "abc"#);
        err(r#"displayName eq "bad \q escape""#);
    }

    #[test]
    fn literals_in_any_case_and_numbers() {
        assert_eq!(
            parse("active eq FALSE").unwrap(),
            cmp("active", CompareOp::Eq, CompValue::Bool(false))
        );
        assert_eq!(
            parse("title eq NULL").unwrap(),
            cmp("title", CompareOp::Eq, CompValue::Null)
        );
        // A number compared with a string attribute is compared as its text.
        assert_eq!(
            parse(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 42"
            )
            .unwrap(),
            cmp(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
                CompareOp::Eq,
                s("42")
            )
        );
        assert!(err("title eq 01").detail.contains("invalid number '01'"));
        assert!(err("title eq -").detail.contains("invalid number"));
        assert!(err("title eq bare").detail.contains("expected a value"));
    }

    #[test]
    fn entra_string_booleans_become_booleans() {
        assert_eq!(
            parse(r#"roles[primary eq "True"]"#).unwrap(),
            Filter::ValuePath {
                attr: attr("roles"),
                filter: Box::new(cmp("roles.primary", CompareOp::Eq, CompValue::Bool(true))),
            }
        );
        assert_eq!(
            parse(r#"active eq "false""#).unwrap(),
            cmp("active", CompareOp::Eq, CompValue::Bool(false))
        );
        assert!(err(r#"active eq "yes""#).detail.contains("true or false"));
        assert!(err("active eq 1").detail.contains("true or false"));
    }

    #[test]
    fn urn_qualified_names() {
        assert_eq!(
            parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#).unwrap(),
            cmp("userName", CompareOp::Eq, s("x"))
        );
        assert_eq!(
            parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName sw "B""#).unwrap(),
            cmp("name.givenName", CompareOp::Sw, s("B"))
        );
        let mgr = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value";
        assert_eq!(
            parse(&format!(r#"{mgr} eq "mgr-1""#)).unwrap(),
            cmp(mgr, CompareOp::Eq, s("mgr-1"))
        );
        assert_eq!(
            parse(r#"URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:EMAILS[TYPE EQ "work"]"#).unwrap(),
            Filter::ValuePath {
                attr: attr("emails"),
                filter: Box::new(cmp("emails.type", CompareOp::Eq, s("work"))),
            }
        );
    }

    #[test]
    fn complex_multi_valued_without_sub_means_value() {
        assert_eq!(
            parse(r#"emails eq "x@y""#).unwrap(),
            parse(r#"emails.value eq "x@y""#).unwrap()
        );
        assert_eq!(
            parse(r#"emails.value eq "x@y""#).unwrap(),
            cmp("emails.value", CompareOp::Eq, s("x@y"))
        );
        // `pr` on the whole attribute stays on the whole attribute.
        assert_eq!(
            parse("emails pr").unwrap(),
            Filter::Present {
                attr: attr("emails")
            }
        );
    }

    #[test]
    fn value_path_with_logical_inner_filter() {
        let f = parse(r#"emails[type eq "work" and not (value co "@old")]"#).unwrap();
        assert_eq!(
            f,
            Filter::ValuePath {
                attr: attr("emails"),
                filter: Box::new(Filter::And(
                    Box::new(cmp("emails.type", CompareOp::Eq, s("work"))),
                    Box::new(Filter::Not(Box::new(cmp(
                        "emails.value",
                        CompareOp::Co,
                        s("@old")
                    ))))
                )),
            }
        );
        // A value path combines with other expressions.
        assert!(matches!(
            parse(r#"emails[type eq "work"] and userName pr"#).unwrap(),
            Filter::And(..)
        ));
    }

    #[test]
    fn date_times_are_parsed() {
        let f = parse(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#).unwrap();
        let Filter::Compare {
            value: CompValue::DateTime(dt),
            op: CompareOp::Gt,
            ..
        } = f
        else {
            panic!("{f:?}");
        };
        assert_eq!(dt.unix_timestamp(), 1_305_261_754);
        let e = err(r#"meta.created eq "yesterday""#);
        assert!(e.detail.contains("RFC 3339"), "{}", e.detail);
        err("meta.created gt 5");
        // Substring operators on a date-time compare its text.
        assert_eq!(
            parse(r#"meta.created sw "2024""#).unwrap(),
            cmp("meta.created", CompareOp::Sw, s("2024"))
        );
    }

    #[test]
    fn okta_bare_word_is_invalid_filter() {
        let e = err("foo");
        assert!(e.detail.contains("end of filter"), "{}", e.detail);
        assert!(e.detail.contains("'foo'"), "{}", e.detail);
    }

    #[test]
    fn missing_value_is_invalid_filter() {
        let e = err("userName eq");
        assert_eq!(
            e.detail,
            "unexpected end of filter at position 11, expected a value (a quoted string, \
             number, true, false or null) after 'eq'"
        );
        err(r#"userName eq "a" and"#);
        err(r#"userName eq "a" or ()"#);
    }

    #[test]
    fn error_details_say_what_and_where() {
        assert_eq!(
            err(r#"userName foo "x""#).detail,
            "unexpected 'foo' at position 9, expected an operator (eq, ne, co, sw, ew, gt, \
             ge, lt, le, pr) or '[' after 'userName'"
                .replace("or '[' ", "")
        );
        assert_eq!(
            err(r#"bogus eq "x""#).detail,
            "unknown attribute 'bogus' at position 0"
        );
        assert_eq!(
            err(r#"userName eq "x" junk"#).detail,
            "unexpected 'junk' at position 16, expected 'and', 'or' or the end of the filter"
        );
        assert_eq!(
            err(r#"emails[foo eq "x"]"#).detail,
            "unknown sub-attribute 'foo' of 'emails' at position 7"
        );
        // Positions count characters, not bytes.
        assert_eq!(
            err(r#"displayName eq "é" junk"#).detail,
            "unexpected 'junk' at position 19, expected 'and', 'or' or the end of the filter"
        );
    }

    #[test]
    fn invalid_operator_and_type_combinations() {
        for f in [
            "active gt true",
            "active co \"t\"",
            r#"name eq "x""#,
            r#"name gt "x""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "x""#,
            "meta eq \"x\"",
            "userName co 1",
            "userName sw null",
            "userName gt null",
            r#"userName[value eq "x"]"#,
            r#"name.givenName[value eq "x"]"#,
            r#"emails[type eq "work"].value eq "x""#,
            r#"emails[type eq "work" and emails[value pr]]"#,
            r#"emails[emails.type eq "work"]"#,
            r#"password eq "secret""#,
            r#"schemas eq "x""#,
            r#"name.foo eq "x""#,
            "userName eq \"x\")",
            "(userName eq \"x\"",
            "emails[type eq \"work\"",
            "userName pr pr",
            "and",
            ")",
            "",
            "   ",
            "\"userName\" eq \"x\"",
        ] {
            err(f);
        }
        assert!(
            err(r#"emails[type eq "work"].value eq "x""#)
                .detail
                .contains("only in PATCH paths")
        );
        assert!(
            err(r#"name eq "x""#)
                .detail
                .contains("complex attribute 'name'")
        );
        assert!(err("userName eq \"x\")").detail.contains("unbalanced ')'"));
    }

    #[test]
    fn nesting_and_length_are_limited() {
        let nested = |n: usize| format!("{}userName pr{}", "(".repeat(n), ")".repeat(n));
        assert!(parse(&nested(MAX_DEPTH)).is_ok());
        assert!(err(&nested(MAX_DEPTH + 1)).detail.contains("nested deeper"));
        let nots = format!("{}userName pr{}", "not (".repeat(1000), ")".repeat(1000));
        assert!(err(&nots).detail.contains("nested deeper"));
        let long = format!(r#"userName eq "{}""#, "a".repeat(MAX_FILTER_LEN));
        assert!(err(&long).detail.contains("too long"));
        // Long flat chains are fine (and evaluate without trouble).
        let chain = vec!["userName pr"; 500].join(" and ");
        assert!(matches(&parse(&chain).unwrap(), &user()));
    }

    // ----- evaluation -----

    #[test]
    fn user_name_is_case_insensitive() {
        assert!(m(r#"userName eq "barbara.jensen@example.com""#));
        assert!(m(r#"userName eq "BARBARA.JENSEN@EXAMPLE.COM""#));
        assert!(!m(r#"userName eq "barbara@example.com""#));
    }

    #[test]
    fn id_and_external_id_are_case_exact() {
        assert!(m(r#"externalId eq "AbC-123""#));
        assert!(!m(r#"externalId eq "abc-123""#));
        assert!(m(r#"id eq "2819c223-7f76-453a-919d-413861904646""#));
        assert!(!m(r#"id eq "2819C223-7F76-453A-919D-413861904646""#));
        // Entra's "Test connection" with a random GUID finds nothing.
        assert!(!m(r#"userName eq "6e1b9a7c-1f0e-4f47-a0bb-0d6b3f1c2e11""#));
    }

    #[test]
    fn substring_and_ordering_operators() {
        assert!(m(r#"userName sw "BARBARA""#));
        assert!(m(r#"userName ew "@example.COM""#));
        assert!(m(r#"userName co "jensen""#));
        assert!(!m(r#"userName co "smith""#));
        assert!(m(r#"userName gt "a""#));
        assert!(m(r#"userName gt "BA""#));
        assert!(!m(r#"userName lt "BA""#));
        assert!(m(r#"userName le "barbara.jensen@example.com""#));
        assert!(m(r#"userName ge "Barbara.Jensen@Example.com""#));
        assert!(!m(r#"externalId co "abc""#));
        assert!(m(r#"externalId sw "AbC""#));
    }

    #[test]
    fn booleans() {
        assert!(m("active eq true"));
        assert!(!m("active eq false"));
        assert!(m(r#"active eq "True""#));
        assert!(m("active ne false"));
        let inactive = json!({"userName": "x", "active": false});
        assert!(matches(&parse("active eq false").unwrap(), &inactive));
        assert!(matches(&parse(r#"active eq "False""#).unwrap(), &inactive));
        assert!(!matches(&parse("active eq true").unwrap(), &inactive));
    }

    #[test]
    fn presence() {
        assert!(m("userName pr"));
        assert!(m("name.givenName pr"));
        assert!(m("emails pr"));
        assert!(!m("title pr"), "empty string is not present");
        assert!(!m("phoneNumbers pr"), "empty array is not present");
        assert!(!m("nickName pr"), "absent");
        assert!(m("active pr"));
        assert!(m("roles.primary pr"));
        let falsy = json!({"active": false, "name": {}, "emails": [{}]});
        assert!(
            matches(&parse("active pr").unwrap(), &falsy),
            "false is present"
        );
        assert!(!matches(&parse("name pr").unwrap(), &falsy));
        assert!(!matches(&parse("emails pr").unwrap(), &falsy));
    }

    #[test]
    fn missing_attributes_eq_ne_and_null() {
        assert!(!m(r#"nickName eq "x""#));
        assert!(m(r#"nickName ne "x""#), "ne is true when absent");
        assert!(!m(r#"nickName gt "a""#));
        assert!(!m(r#"nickName co "a""#));
        assert!(m("nickName eq null"));
        assert!(!m("nickName ne null"));
        assert!(!m("userName eq null"));
        assert!(m("userName ne null"));
        assert!(m("title eq null"), "empty string counts as absent");
        assert!(m(r#"displayName ne "someone else""#));
        assert!(!m(r#"displayName ne "BABS""#));
    }

    #[test]
    fn multi_valued_any_element() {
        assert!(m(r#"emails.type eq "work""#));
        assert!(m(r#"emails.type eq "home""#));
        assert!(!m(r#"emails.type eq "other""#));
        assert!(m(r#"emails eq "BABS@example.com""#));
        assert!(m(r#"emails.value co "@work""#));
        // ne is the negation of eq: false because one element is "work".
        assert!(!m(r#"emails.type ne "work""#));
        assert!(m(r#"emails.type ne "other""#));
    }

    #[test]
    fn value_path_matches_one_element_as_a_whole() {
        // Different elements satisfy each half: the flat form matches, the value path not.
        assert!(m(
            r#"emails.type eq "work" and emails.value ew "@example.com""#
        ));
        assert!(!m(r#"emails[type eq "work" and value ew "@example.com"]"#));
        assert!(m(r#"emails[type eq "home" and value ew "@example.com"]"#));
        assert!(m(r#"emails[type eq "work" and primary eq false]"#));
        assert!(m(r#"emails[type eq "home" and primary eq "TRUE"]"#));
        assert!(!m(r#"emails[type eq "work" and primary eq true]"#));
        assert!(m(r#"roles[primary eq "True" and value eq "ADMIN"]"#));
        assert!(m(r#"emails[not (type eq "work")]"#));
        assert!(!m(r#"phoneNumbers[value pr]"#));
        assert!(m(
            r#"emails[type eq "work"] and not (roles[value eq "viewer"])"#
        ));
        // Singular complex attributes can be filtered the same way.
        assert!(m(r#"name[givenName eq "barbara" and familyName pr]"#));
    }

    #[test]
    fn enterprise_attributes() {
        let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        assert!(m(&format!(r#"{ent}:employeeNumber eq "42""#)));
        assert!(m(&format!("{ent}:employeeNumber eq 42")));
        assert!(m(&format!(r#"{ent}:department co "tour""#)));
        assert!(m(&format!(r#"{ent}:manager.value eq "mgr-1""#)));
        assert!(!m(&format!(
            r#"{ent}:manager.value eq "MGR-1" and {ent}:costCenter pr"#
        )));
        assert!(m(&format!(r#"{ent}:manager[value sw "mgr"]"#)));
    }

    #[test]
    fn date_time_comparisons_by_instant() {
        // lastModified is 2024-06-01T10:30:00Z written with a +02:00 offset.
        assert!(m(r#"meta.lastModified eq "2024-06-01T10:30:00Z""#));
        assert!(m(r#"meta.lastModified gt "2024-06-01T10:29:59Z""#));
        assert!(!m(r#"meta.lastModified gt "2024-06-01T10:30:00Z""#));
        assert!(m(r#"meta.lastModified ge "2024-06-01T12:30:00+02:00""#));
        assert!(m(r#"meta.lastModified lt "2024-06-01T12:30:01+02:00""#));
        assert!(m(r#"meta.created lt "2024-01-01T10:00:00.001Z""#));
        assert!(m(r#"meta.created le "2024-01-01T10:00:00Z""#));
        assert!(!m(r#"meta.created gt "2025-01-01T00:00:00Z""#));
    }

    #[test]
    fn logical_combinations() {
        assert!(m(r#"userName eq "nobody" or active eq true"#));
        assert!(!m(r#"userName eq "nobody" and active eq true"#));
        assert!(m(r#"not (userName eq "nobody")"#));
        assert!(!m(r#"not (userName pr)"#));
        assert!(m(
            r#"(userName eq "nobody" or displayName eq "babs") and (title pr or active eq true)"#
        ));
    }

    #[test]
    fn numbers_compare_numerically() {
        let a: Number = serde_json::from_str("10").unwrap();
        let b: Number = serde_json::from_str("9.5").unwrap();
        let c: Number = serde_json::from_str("-3").unwrap();
        let big: Number = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(cmp_numbers(&a, &b), Some(Ordering::Greater));
        assert_eq!(cmp_numbers(&c, &a), Some(Ordering::Less));
        assert_eq!(cmp_numbers(&big, &a), Some(Ordering::Greater));
        assert_eq!(cmp_numbers(&big, &c), Some(Ordering::Greater));
        assert_eq!(cmp_numbers(&a, &a), Some(Ordering::Equal));
    }

    #[test]
    fn bracket_filter_for_patch_paths_returns_rest() {
        let (f, rest) = parse_bracket_filter(attr("emails"), r#"[type eq "w]ork"].value"#).unwrap();
        assert_eq!(f, cmp("emails.type", CompareOp::Eq, s("w]ork")));
        assert_eq!(rest, ".value");
        let (_, rest) = parse_bracket_filter(attr("roles"), r#"[primary eq "True"]"#).unwrap();
        assert_eq!(rest, "");
        assert!(parse_bracket_filter(attr("userName"), "[value pr]").is_err());
        assert!(parse_bracket_filter(attr("emails"), "[value pr").is_err());
        assert!(parse_bracket_filter(attr("emails"), "value pr]").is_err());
        assert!(parse_bracket_filter(attr("emails"), "[bogus pr]").is_err());
        assert!(matches_element(&f, &json!({"type": "W]ORK"})));
        assert!(!matches_element(&f, &json!({"type": "work"})));
    }

    proptest! {
        #[test]
        fn parse_never_panics(input in "\\PC{0,200}") {
            if let Ok(f) = parse(&input) {
                let _ = matches(&f, &user());
            }
        }

        #[test]
        fn token_soup_never_panics(parts in proptest::collection::vec(
            prop_oneof![
                Just("userName"), Just("emails"), Just("emails.value"), Just("name"),
                Just("active"), Just("meta.created"), Just("type"), Just("primary"),
                Just("value"), Just("eq"), Just("ne"), Just("co"), Just("gt"), Just("pr"),
                Just("and"), Just("or"), Just("not"), Just("("), Just(")"), Just("["),
                Just("]"), Just("\"x\""), Just("\"True\""), Just("true"), Just("null"),
                Just("42"), Just("\"2024-01-01T00:00:00Z\""), Just(".value"), Just("\""),
                Just("\\"), Just("é"),
            ],
            0..40,
        ), sep in prop_oneof![Just(" "), Just(""), Just("  ")]) {
            let input = parts.join(sep);
            if let Ok(f) = parse(&input) {
                let _ = matches(&f, &user());
                let _ = matches(&f, &json!(null));
                let _ = matches(&f, &json!({"emails": "not-an-array", "name": 3}));
            }
            let _ = parse_bracket_filter(attr("emails"), &input);
        }
    }
}
