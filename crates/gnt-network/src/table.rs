//! Ganeti's `GenericList` layout and the `list-fields` table.

/// One cell of a query result, typed so that `--output-format json` can show what the
/// table flattens into text.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(String),
    Number(i64),
    /// Ganeti's "unavailable": `-`, or `(unavail)` with `-v`; JSON `null`.
    Unavail,
    /// A list; an absent item shows as `None` (JSON `null`).
    List(Vec<Option<String>>, Join),
    /// Seconds since the epoch, shown as Ganeti's `FormatTime`.
    Time(f64),
    /// A value whose table text and JSON form are built separately (lists of records).
    Shaped(String, serde_json::Value),
}

/// How a [`Value::List`] shows in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    /// Items joined by this separator.
    With(&'static str),
    /// Python's `str()` of the list, as Ganeti's client prints lists it has no format
    /// override for: `['eth0', None]`.
    Python,
}

impl Value {
    /// A list of present items.
    pub fn list<T: ToString>(items: impl IntoIterator<Item = T>, join: Join) -> Value {
        Value::List(
            items.into_iter().map(|i| Some(i.to_string())).collect(),
            join,
        )
    }

    /// The table cell.
    pub fn cell(&self, verbose: bool) -> String {
        match self {
            Value::Text(s) | Value::Shaped(s, _) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Unavail if verbose => "(unavail)".into(),
            Value::Unavail => "-".into(),
            Value::List(items, Join::With(sep)) => items
                .iter()
                .map(|i| i.as_deref().unwrap_or("None"))
                .collect::<Vec<_>>()
                .join(sep),
            Value::List(items, Join::Python) => {
                let items: Vec<String> = items
                    .iter()
                    .map(|i| i.as_deref().map_or_else(|| "None".to_owned(), py_repr))
                    .collect();
                format!("[{}]", items.join(", "))
            }
            Value::Time(t) => netconf::timefmt::format_time(*t),
        }
    }

    /// The JSON form: strings, numbers, arrays; `null` for what is absent.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Text(s) => J::String(s.clone()),
            Value::Number(n) => J::from(*n),
            Value::Unavail => J::Null,
            Value::List(items, _) => J::Array(
                items
                    .iter()
                    .map(|i| i.as_ref().map_or(J::Null, |s| J::String(s.clone())))
                    .collect(),
            ),
            // serde_json makes a non-finite number null (config.data holds none).
            Value::Time(t) => J::from(*t),
            Value::Shaped(_, j) => j.clone(),
        }
    }
}

/// Python's `repr` of a string, as Ganeti's client prints list items.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `list --output-format json`: an array with one object per row, the selected fields
/// as keys in their order.
pub fn render_json(fields: &[Field], rows: &[Vec<Value>]) -> String {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::Value::Object(
                fields
                    .iter()
                    .zip(r)
                    .map(|(f, v)| (f.name.to_owned(), v.to_json()))
                    .collect(),
            )
        })
        .collect();
    json_text(&serde_json::Value::Array(rows))
}

/// A connection of a network to a node group in JSON: `{"<key>": name, "mode", "link",
/// "vlan"}`, the VLAN `null` when the connection has none (the table shows it empty).
pub fn connection_json(
    key: &str,
    name: &str,
    p: &netconf_cluster::config::NicParams,
) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert(key.to_owned(), name.into());
    m.insert("mode".into(), p.mode.to_string().into());
    m.insert("link".into(), p.link.clone().into());
    m.insert(
        "vlan".into(),
        if p.vlan.is_empty() {
            serde_json::Value::Null
        } else {
            p.vlan.clone().into()
        },
    );
    serde_json::Value::Object(m)
}

/// Pretty-printed JSON with a final newline.
pub fn json_text(v: &impl serde::Serialize) -> String {
    // Serialising a tree of strings, numbers and maps with string keys cannot fail.
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Number,
    Other,
    Timestamp,
}

impl Kind {
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Text => "Text",
            Kind::Number => "Number",
            Kind::Other => "Custom",
            Kind::Timestamp => "Timestamp",
        }
    }
}

/// A queryable field: name, column title, kind, description.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub title: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
}

/// Shorthand for the field tables of the four CLIs.
pub const fn field(
    name: &'static str,
    title: &'static str,
    kind: Kind,
    doc: &'static str,
) -> Field {
    Field {
        name,
        title,
        kind,
        doc,
    }
}

/// Resolves `-o` (`f1,f2` replaces the defaults, `+f1,f2` appends). Unknown names are
/// returned in the error, for Ganeti's exit code 14.
pub fn select_fields(
    all: &[Field],
    defaults: &[&str],
    spec: Option<&str>,
) -> Result<Vec<Field>, Vec<String>> {
    let names: Vec<String> = match spec {
        None => defaults.iter().map(|s| (*s).to_owned()).collect(),
        Some(s) if s.starts_with('+') => defaults
            .iter()
            .map(|s| (*s).to_owned())
            .chain(
                s[1..]
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_owned),
            )
            .collect(),
        Some(s) => s
            .split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    let unknown: Vec<String> = names
        .iter()
        .filter(|n| !all.iter().any(|f| f.name == *n))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(unknown);
    }
    Ok(names
        .iter()
        .map(|n| *all.iter().find(|f| f.name == n).expect("checked"))
        .collect())
}

pub struct ListOpts {
    pub headers: bool,
    pub separator: Option<String>,
    pub verbose: bool,
}

/// Renders rows as Ganeti does: one space between columns, numbers right-aligned, the
/// last left-aligned column unpadded; or a plain join with `--separator`.
pub fn render(fields: &[Field], rows: &[Vec<Value>], o: &ListOpts) -> String {
    let cell = |v: &Value| v.cell(o.verbose);
    let mut table: Vec<Vec<String>> = Vec::new();
    if o.headers {
        table.push(fields.iter().map(|f| f.title.to_owned()).collect());
    }
    for r in rows {
        table.push(r.iter().map(cell).collect());
    }
    let mut out = String::new();
    if let Some(sep) = &o.separator {
        for r in &table {
            out.push_str(&r.join(sep));
            out.push('\n');
        }
        return out;
    }
    let widths: Vec<usize> = (0..fields.len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in &table {
        let mut line = String::new();
        for (c, v) in r.iter().enumerate() {
            if c > 0 {
                line.push(' ');
            }
            let pad = widths[c] - v.chars().count();
            if fields[c].kind == Kind::Number {
                line.push_str(&" ".repeat(pad));
                line.push_str(v);
            } else {
                line.push_str(v);
                if c + 1 < r.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `list-fields`: Name, Type, Title, Description.
pub fn render_fields(all: &[Field], names: &[String], o: &ListOpts) -> Result<String, Vec<String>> {
    let chosen: Vec<Field> = if names.is_empty() {
        // Ganeti lists every field in natural order of the names.
        let mut all = all.to_vec();
        all.sort_by(|a, b| crate::sort::nice_cmp(a.name, b.name));
        all
    } else {
        select_fields(all, &[], Some(&names.join(",")))?
    };
    let cols = [
        Field {
            name: "name",
            title: "Name",
            kind: Kind::Text,
            doc: "",
        },
        Field {
            name: "type",
            title: "Type",
            kind: Kind::Text,
            doc: "",
        },
        Field {
            name: "title",
            title: "Title",
            kind: Kind::Text,
            doc: "",
        },
        Field {
            name: "description",
            title: "Description",
            kind: Kind::Text,
            doc: "",
        },
    ];
    let rows: Vec<Vec<Value>> = chosen
        .iter()
        .map(|f| {
            vec![
                Value::Text(f.name.into()),
                Value::Text(f.kind.type_name().into()),
                Value::Text(f.title.into()),
                Value::Text(f.doc.into()),
            ]
        })
        .collect();
    Ok(render(&cols, &rows, o))
}

/// Python's `textwrap.wrap(text, width)`: greedy on spaces.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: [Field; 3] = [
        Field {
            name: "name",
            title: "Network",
            kind: Kind::Text,
            doc: "Name",
        },
        Field {
            name: "free_count",
            title: "FreeCount",
            kind: Kind::Number,
            doc: "Free",
        },
        Field {
            name: "tags",
            title: "Tags",
            kind: Kind::Other,
            doc: "Tags",
        },
    ];

    #[test]
    fn layout_matches_ganeti() {
        let rows = vec![
            vec![
                Value::Text("net100".into()),
                Value::Number(9),
                Value::Text("a,b".into()),
            ],
            vec![
                Value::Text("n".into()),
                Value::Number(253),
                Value::Text(String::new()),
            ],
        ];
        let o = ListOpts {
            headers: true,
            separator: None,
            verbose: false,
        };
        assert_eq!(
            render(&F, &rows, &o),
            "Network FreeCount Tags\nnet100          9 a,b\nn             253 \n"
        );
        let o = ListOpts {
            headers: false,
            separator: Some("|".into()),
            verbose: false,
        };
        assert_eq!(render(&F, &rows, &o), "net100|9|a,b\nn|253|\n");
    }

    #[test]
    fn typed_values_show_as_text_and_as_json() {
        use serde_json::json;
        let cases = [
            (Value::Number(7), "7", json!(7)),
            (Value::Unavail, "-", json!(null)),
            (
                Value::List(vec![Some("a".into()), None], Join::With(",")),
                "a,None",
                json!(["a", null]),
            ),
            (
                Value::list(["192.0.2.0", "192.0.2.1"], Join::With(", ")),
                "192.0.2.0, 192.0.2.1",
                json!(["192.0.2.0", "192.0.2.1"]),
            ),
            (
                Value::List(vec![Some("it's".into()), None], Join::Python),
                "[\"it's\", None]",
                json!(["it's", null]),
            ),
            (
                Value::list(Vec::<String>::new(), Join::With(",")),
                "",
                json!([]),
            ),
            (
                Value::Time(951_782_400.25),
                "2000-02-29 00:00:00",
                json!(951_782_400.25),
            ),
            (Value::Time(f64::NAN), "1970-01-01 00:00:00", json!(null)),
        ];
        for (v, text, j) in cases {
            assert_eq!(v.cell(false), text, "{v:?}");
            assert_eq!(v.to_json(), j, "{v:?}");
        }
        assert_eq!(Value::Unavail.cell(true), "(unavail)");
        let fields = [F[0], F[1]];
        let rows = vec![vec![Value::Text("n".into()), Value::Unavail]];
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&render_json(&fields, &rows)).unwrap(),
            json!([{"name": "n", "free_count": null}])
        );
    }

    #[test]
    fn field_selection() {
        assert_eq!(
            select_fields(&F, &["name"], Some("+tags")).unwrap().len(),
            2
        );
        assert_eq!(
            select_fields(&F, &["name"], Some("tags")).unwrap()[0].name,
            "tags"
        );
        assert_eq!(
            select_fields(&F, &["name"], Some("name,bogus")).unwrap_err(),
            ["bogus"]
        );
    }

    #[test]
    fn wraps_like_textwrap() {
        let s =
            "192.0.2.0, 192.0.2.1, 192.0.2.10, 192.0.2.15, 192.0.2.100, 192.0.2.101, 192.0.2.102";
        let w = wrap(s, 64);
        assert!(w.iter().all(|l| l.len() <= 64));
        assert_eq!(w.join(" "), s);
        assert_eq!(
            w[0],
            "192.0.2.0, 192.0.2.1, 192.0.2.10, 192.0.2.15, 192.0.2.100,"
        );
    }
}
