//! A small PDF 1.4 writer: pages of text in the standard fonts (Helvetica, Helvetica-Bold,
//! Courier; no font is embedded), lines and filled rectangles, uncompressed content streams,
//! and a cross-reference table whose offsets are counted as the file is written.
//!
//! Text is written in WinAnsiEncoding: printable ASCII as is (with `(`, `)` and `\` escaped),
//! Latin-1 and the few typographic characters that encoding has as octal escapes, anything
//! else as `?`. Enough for reports; not a general PDF library.

use std::fmt::Write as _;

/// A standard font.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Font {
    /// Helvetica.
    Regular,
    /// Helvetica-Bold.
    Bold,
    /// Courier: every glyph is 0.6 em wide, so columns of it line up.
    Mono,
}

impl Font {
    fn resource(self) -> &'static str {
        match self {
            Font::Regular => "/F1",
            Font::Bold => "/F2",
            Font::Mono => "/F3",
        }
    }
}

/// The width of `chars` characters of Courier at `size` points.
pub fn mono_width(chars: usize, size: f64) -> f64 {
    chars as f64 * size * 0.6
}

/// The WinAnsiEncoding byte of a character that is not ASCII, if it has one.
fn win_ansi(c: char) -> Option<u8> {
    let code = u32::from(c);
    if (0xA0..=0xFF).contains(&code) {
        return u8::try_from(code).ok();
    }
    Some(match c {
        '€' => 0x80,
        '…' => 0x85,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        _ => return None,
    })
}

/// `text` as the inside of a PDF literal string in WinAnsiEncoding.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if c.is_control() => out.push(' '),
            c => match win_ansi(c) {
                Some(byte) => {
                    let _ = write!(out, "\\{byte:03o}");
                }
                None => out.push('?'),
            },
        }
    }
    out
}

/// One page's drawing, in points from the bottom left corner.
#[derive(Debug, Clone, Default)]
pub struct Page {
    content: String,
}

fn n(v: f64) -> String {
    crate::chart::coord(v)
}

impl Page {
    /// `text` in `font` at `size` points, its baseline starting at (`x`, `y`), in the current
    /// fill colour.
    pub fn text(&mut self, font: Font, size: f64, x: f64, y: f64, text: &str) {
        let _ = writeln!(
            self.content,
            "BT {} {} Tf {} {} Td ({}) Tj ET",
            font.resource(),
            n(size),
            n(x),
            n(y),
            escape(text)
        );
    }

    /// The fill colour (text and rectangles), RGB in 0..=1.
    pub fn fill(&mut self, rgb: [f64; 3]) {
        let _ = writeln!(
            self.content,
            "{} {} {} rg",
            n2(rgb[0]),
            n2(rgb[1]),
            n2(rgb[2])
        );
    }

    /// The stroke colour (lines), RGB in 0..=1.
    pub fn stroke(&mut self, rgb: [f64; 3]) {
        let _ = writeln!(
            self.content,
            "{} {} {} RG",
            n2(rgb[0]),
            n2(rgb[1]),
            n2(rgb[2])
        );
    }

    /// A filled rectangle with its bottom left corner at (`x`, `y`).
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64) {
        let _ = writeln!(self.content, "{} {} {} {} re f", n(x), n(y), n(w), n(h));
    }

    /// Lines from now on dashed (3 points on, 2 off) or solid.
    pub fn dashed(&mut self, dashed: bool) {
        self.content
            .push_str(if dashed { "[3 2] 0 d\n" } else { "[] 0 d\n" });
    }

    /// A line `width` points wide.
    pub fn line(&mut self, from: (f64, f64), to: (f64, f64), width: f64) {
        let _ = writeln!(
            self.content,
            "{} w {} {} m {} {} l S",
            n(width),
            n(from.0),
            n(from.1),
            n(to.0),
            n(to.1)
        );
    }
}

/// A colour component with two decimals.
fn n2(v: f64) -> String {
    let hundredths = (v.clamp(0.0, 1.0) * 100.0).round() as u32;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// A document: pages of one size, and a title.
#[derive(Debug, Clone)]
pub struct Document {
    /// Page width and height, in points.
    pub size: (f64, f64),
    /// The document's title (its Info dictionary).
    pub title: String,
    /// The pages, in order.
    pub pages: Vec<Page>,
}

/// Objects that come before the pages: catalog, page tree, three fonts, info.
const FIXED: usize = 6;

impl Document {
    /// The file: header, objects, cross-reference table, trailer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out: Vec<u8> = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
        let count = FIXED + 2 * self.pages.len();
        let mut offsets = Vec::with_capacity(count);
        let mut object = |out: &mut Vec<u8>, body: &[u8]| {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n", offsets.len()).as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\nendobj\n");
        };
        let kids: Vec<String> = (0..self.pages.len())
            .map(|i| format!("{} 0 R", FIXED + 1 + 2 * i))
            .collect();
        object(&mut out, b"<< /Type /Catalog /Pages 2 0 R >>");
        object(
            &mut out,
            format!(
                "<< /Type /Pages /Kids [{}] /Count {} >>",
                kids.join(" "),
                self.pages.len()
            )
            .as_bytes(),
        );
        for font in ["Helvetica", "Helvetica-Bold", "Courier"] {
            object(
                &mut out,
                format!(
                    "<< /Type /Font /Subtype /Type1 /BaseFont /{font} /Encoding /WinAnsiEncoding >>"
                )
                .as_bytes(),
            );
        }
        object(
            &mut out,
            format!(
                "<< /Title ({}) /Producer (Chaos platform dashboard) >>",
                escape(&self.title)
            )
            .as_bytes(),
        );
        for (i, page) in self.pages.iter().enumerate() {
            object(
                &mut out,
                format!(
                    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] \
                     /Resources << /Font << /F1 3 0 R /F2 4 0 R /F3 5 0 R >> >> /Contents {} 0 R >>",
                    n(self.size.0),
                    n(self.size.1),
                    FIXED + 2 + 2 * i
                )
                .as_bytes(),
            );
            let mut stream = format!("<< /Length {} >>\nstream\n", page.content.len()).into_bytes();
            stream.extend_from_slice(page.content.as_bytes());
            stream.extend_from_slice(b"\nendstream");
            object(&mut out, &stream);
        }
        let xref = out.len();
        let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", count + 1);
        for offset in &offsets {
            let _ = writeln!(table, "{offset:010} 00000 n ");
        }
        let _ = write!(
            table,
            "trailer\n<< /Size {} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            count + 1
        );
        out.extend_from_slice(table.as_bytes());
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks the structure of a PDF file: header, every xref entry pointing at its object,
    /// `startxref` at the table, the trailer; returns its text (lossy) for further checks.
    pub(crate) fn check_structure(bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes).into_owned();
        assert!(bytes.starts_with(b"%PDF-1.4\n"), "header");
        assert!(bytes.ends_with(b"%%EOF\n"), "end");
        let start = text.rfind("startxref\n").expect("startxref");
        let xref: usize = text[start + 10..]
            .lines()
            .next()
            .and_then(|l| l.parse().ok())
            .expect("xref offset");
        // Offsets count bytes: compare bytes, not lossy text.
        assert!(
            bytes[xref..].starts_with(b"xref\n0 "),
            "startxref points at the table"
        );
        let table = String::from_utf8_lossy(&bytes[xref..]).into_owned();
        let mut lines = table.lines().skip(1);
        let size: usize = lines
            .next()
            .and_then(|l| l.strip_prefix("0 "))
            .and_then(|n| n.parse().ok())
            .expect("xref size");
        assert_eq!(lines.next(), Some("0000000000 65535 f "));
        for number in 1..size {
            let entry = lines.next().expect("an entry per object");
            assert_eq!(entry.len(), 19, "{entry:?} (20 bytes with its newline)");
            let offset: usize = entry[..10].parse().expect("offset");
            assert!(entry.ends_with(" 00000 n "), "{entry:?}");
            let head = format!("{number} 0 obj\n");
            assert!(
                bytes[offset..].starts_with(head.as_bytes()),
                "object {number} is not at {offset}"
            );
        }
        assert_eq!(lines.next(), Some("trailer"));
        assert!(text.contains(&format!("/Size {size} /Root 1 0 R")));
        // Every stream's length is its length.
        let mut rest = bytes;
        while let Some(at) = find(rest, b"/Length ") {
            let after = &rest[at + 8..];
            let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
            let length: usize = std::str::from_utf8(&after[..digits])
                .ok()
                .and_then(|d| d.parse().ok())
                .expect("length");
            let body = find(after, b"stream\n").expect("stream") + 7;
            assert!(
                after[body + length..].starts_with(b"\nendstream"),
                "a stream of {length} bytes"
            );
            rest = &after[body + length..];
        }
        text
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn text_is_escaped_for_literal_strings() {
        assert_eq!(escape(r"a (b) c\d"), r"a \(b\) c\\d");
        assert_eq!(escape("café – 5 €"), r"caf\351 \226 5 \200");
        assert_eq!(escape("line\nbreak"), "line break");
        assert_eq!(escape("日本"), "??");
    }

    #[test]
    fn a_document_has_a_valid_structure() {
        let mut first = Page::default();
        first.fill([0.0, 0.5, 1.0]);
        first.text(Font::Bold, 18.0, 36.0, 800.0, "Results (all) \\ done");
        first.rect(36.0, 100.0, 50.0, 20.5);
        first.stroke([0.2, 0.2, 0.2]);
        first.dashed(true);
        first.line((36.0, 90.0), (300.0, 90.0), 0.5);
        first.dashed(false);
        let mut second = Page::default();
        second.text(Font::Mono, 8.0, 36.0, 700.0, "naïve");
        let doc = Document {
            size: (595.0, 842.0),
            title: "Report (test)".to_owned(),
            pages: vec![first, second, Page::default()],
        };
        let bytes = doc.to_bytes();
        let text = check_structure(&bytes);
        assert!(text.contains("/Count 3"));
        assert!(text.contains("/Kids [7 0 R 9 0 R 11 0 R]"));
        assert!(text.contains(r"(Results \(all\) \\ done) Tj"));
        assert!(text.contains(r"(na\357ve) Tj"));
        assert!(text.contains("0.00 0.50 1.00 rg"));
        assert!(text.contains("36 100 50 20.5 re f"));
        assert!(text.contains("[3 2] 0 d\n0.5 w 36 90 m 300 90 l S\n[] 0 d\n"));
        assert!(text.contains("/Title (Report \\(test\\))"));
        assert!(text.contains("/BaseFont /Courier /Encoding /WinAnsiEncoding"));
    }

    #[test]
    fn courier_widths() {
        assert!((mono_width(10, 8.0) - 48.0).abs() < 1e-9);
    }
}
