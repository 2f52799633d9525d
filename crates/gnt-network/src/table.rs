//! Ganeti's `GenericList` layout and the `list-fields` table.

/// One cell of a query result.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(String),
    Number(i64),
    /// Ganeti's "unavailable": `-`, or `(unavail)` with `-v`.
    Unavail,
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
    let cell = |v: &Value| match v {
        Value::Text(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Unavail if o.verbose => "(unavail)".into(),
        Value::Unavail => "-".into(),
    };
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
