//! The mdBook side: write a study's chapter into `BOOK/src/<study>/`, keep its entry in
//! `SUMMARY.md` without touching other studies', check every link and image we generate
//! (stock `mdbook build` exits 0 on a broken one — mdBook issues #1094, #1865), and build the
//! HTML in-process with mdBook's own crates.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::files::atomic::write_atomic;

/// Why the book could not be written or built.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: broken link `{target}` (no such file)")]
    BrokenLink { path: PathBuf, target: String },
    #[error("{book}: mdBook build failed: {reason}")]
    Build { book: PathBuf, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BookError + '_ {
    move |source| BookError::Io {
        path: path.to_path_buf(),
        source,
    }
}

const DEFAULT_BOOK_TOML: &str = "[book]\ntitle = \"scalebook reports\"\nlanguage = \"en\"\nsrc = \"src\"\n\n[build]\nbuild-dir = \"book\"\ncreate-missing = false\n";
const DEFAULT_SUMMARY: &str = "# Summary\n\n# Studies\n";

/// Hold the book while a chapter and `SUMMARY.md` are written and the HTML is built: two
/// `report`s into one book would otherwise interleave `SUMMARY.md` edits and mdBook builds.
/// The lock file lives in the system's temporary folder, named by the book's canonical path
/// (every spelling of the book takes the same lock; mdBook empties its output folder, and
/// a book in version control should not gain a lock file).
pub fn lock(book: &Path) -> Result<crate::files::lock::FileLock, BookError> {
    use sha2::{Digest, Sha256};
    std::fs::create_dir_all(book).map_err(io_err(book))?;
    let canonical = std::fs::canonicalize(book).map_err(io_err(book))?;
    let digest =
        crate::data::identity::hex(&Sha256::digest(canonical.as_os_str().as_encoded_bytes()));
    let path = std::env::temp_dir().join(format!("scalebook-book-{}.lock", &digest[..16]));
    crate::files::lock::FileLock::exclusive(&path).map_err(io_err(&path))
}

/// Make `book` an mdBook if it is not one yet (a `book.toml` and `src/SUMMARY.md`).
pub fn ensure_book(book: &Path) -> Result<(), BookError> {
    let toml = book.join("book.toml");
    let src = book.join("src");
    std::fs::create_dir_all(&src).map_err(io_err(&src))?;
    if !toml.exists() {
        write_atomic(&toml, DEFAULT_BOOK_TOML.as_bytes()).map_err(io_err(&toml))?;
    }
    let summary = src.join("SUMMARY.md");
    if !summary.exists() {
        write_atomic(&summary, DEFAULT_SUMMARY.as_bytes()).map_err(io_err(&summary))?;
    }
    Ok(())
}

/// Write the chapter's files (path relative to the chapter folder → bytes), atomically, and
/// remove figures an earlier render left that this one no longer makes.
pub fn write_chapter(chapter: &Path, files: &[(String, Vec<u8>)]) -> Result<(), BookError> {
    let figures = chapter.join("figures");
    std::fs::create_dir_all(&figures).map_err(io_err(&figures))?;
    let keep: BTreeSet<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    for (rel, bytes) in files {
        let path = chapter.join(rel);
        // Unchanged files are left alone so their mtime (and mdBook's copy) stays put.
        if std::fs::read(&path).is_ok_and(|old| &old == bytes) {
            continue;
        }
        write_atomic(&path, bytes).map_err(io_err(&path))?;
    }
    let entries = std::fs::read_dir(&figures).map_err(io_err(&figures))?;
    for entry in entries.flatten() {
        let rel = format!("figures/{}", entry.file_name().to_string_lossy());
        if !keep.contains(rel.as_str()) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

fn escape_link_text(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace('\n', " ")
}

/// `SUMMARY.md` with the study's entry added or updated; other lines stay as they are.
pub fn update_summary(text: &str, name: &str, title: &str) -> String {
    let target = format!("({name}/index.md)");
    let entry = format!("- [{}]{target}", escape_link_text(title));
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if let Some(i) = lines.iter().position(|l| l.trim_end().ends_with(&target)) {
        let indent: String = lines[i].chars().take_while(|c| c.is_whitespace()).collect();
        lines[i] = format!("{indent}{entry}");
    } else if let Some(h) = lines.iter().position(|l| l.trim() == "# Studies") {
        // After the last non-blank line of the Studies part (up to the next part title).
        let end = lines[h + 1..]
            .iter()
            .position(|l| l.starts_with("# "))
            .map_or(lines.len(), |p| h + 1 + p);
        let mut at = end;
        while at > h + 1 && lines[at - 1].trim().is_empty() {
            at -= 1;
        }
        if at == h + 1 {
            lines.insert(at, String::new());
            at += 1;
        }
        lines.insert(at, entry);
    } else {
        if lines.last().is_some_and(|l| !l.trim().is_empty()) {
            lines.push(String::new());
        }
        lines.push("# Studies".into());
        lines.push(String::new());
        lines.push(entry);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Relative link and image targets in Markdown/HTML we generated: `](target)`, `src="…"`,
/// `href="…"`.
pub fn link_targets(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = markdown;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
        }
    }
    for attr in ["src=\"", "href=\""] {
        let mut rest = markdown;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_string());
            }
        }
    }
    out.retain(|t| {
        !(t.is_empty()
            || t.starts_with('#')
            || t.contains("://")
            || t.starts_with("mailto:")
            || t.starts_with('/'))
    });
    out
}

/// The first relative link of `markdown` (in the chapter folder `chapter`) that names
/// neither a file about to be written (`will_write`) nor one on disk: checked before
/// anything is written, so a broken link publishes nothing.
pub fn first_broken_link(
    chapter: &Path,
    markdown: &str,
    will_write: &dyn Fn(&str) -> bool,
) -> Option<String> {
    link_targets(markdown).into_iter().find(|target| {
        let path = target.split('#').next().unwrap_or_default();
        let path = path.strip_prefix("./").unwrap_or(path);
        !will_write(path) && !chapter.join(path).is_file()
    })
}

/// Every relative link of `file` must name an existing file.
pub fn check_links(file: &Path, markdown: &str) -> Result<(), BookError> {
    let dir = crate::files::folder_of(file);
    for target in link_targets(markdown) {
        let path = target.split('#').next().unwrap_or_default();
        if !dir.join(path).is_file() {
            return Err(BookError::BrokenLink {
                path: file.to_path_buf(),
                target,
            });
        }
    }
    Ok(())
}

/// Write the updated `SUMMARY.md` and check that every chapter it lists exists (with
/// `create-missing` on, mdBook would silently create the missing ones).
pub fn write_summary(book: &Path, name: &str, title: &str) -> Result<(), BookError> {
    let path = book.join("src").join("SUMMARY.md");
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    let updated = update_summary(&text, name, title);
    if updated != text {
        write_atomic(&path, updated.as_bytes()).map_err(io_err(&path))?;
    }
    check_links(&path, &updated)
}

/// Build the HTML in-process into `BOOK/book/`.
pub fn build(book: &Path) -> Result<PathBuf, BookError> {
    let fail = |reason: String| BookError::Build {
        book: book.to_path_buf(),
        reason,
    };
    let md = mdbook_driver::MDBook::load(book).map_err(|e| fail(format!("{e:#}")))?;
    md.build().map_err(|e| fail(format!("{e:#}")))?;
    Ok(md.build_dir_for("html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_entries_are_added_once_and_updated_in_place() {
        let base = "# Summary\n\n[Introduction](introduction.md)\n\n# Studies\n";
        let one = update_summary(base, "alpha", "Alpha study");
        assert_eq!(
            one,
            "# Summary\n\n[Introduction](introduction.md)\n\n# Studies\n\n- [Alpha study](alpha/index.md)\n"
        );
        let two = update_summary(&one, "beta", "Beta [v2]");
        assert!(
            two.ends_with("- [Alpha study](alpha/index.md)\n- [Beta \\[v2\\]](beta/index.md)\n")
        );
        // Re-rendering alpha with a new title changes only its line.
        let three = update_summary(&two, "alpha", "Alpha, revised");
        assert_eq!(three.lines().count(), two.lines().count());
        assert!(three.contains("- [Alpha, revised](alpha/index.md)\n- [Beta"));
        assert_eq!(update_summary(&three, "beta", "Beta [v2]"), three);
        // A part after Studies stays after it.
        let parts = "# Summary\n\n# Studies\n\n- [A](a/index.md)\n\n# Appendix\n\n- [X](x.md)\n";
        let out = update_summary(parts, "b", "B");
        assert!(out.contains("- [A](a/index.md)\n- [B](b/index.md)\n\n# Appendix"));
    }

    #[test]
    fn links_are_found_and_checked() {
        let md = "![a](figures/a.svg) [b](../other/index.md#x) <img src=\"figures/c.svg\"> [w](https://x.org) [#](#top)";
        assert_eq!(
            link_targets(md),
            ["figures/a.svg", "../other/index.md#x", "figures/c.svg"]
        );
        let dir = std::env::temp_dir().join(format!("scalebook-links-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("figures")).unwrap();
        std::fs::write(dir.join("figures/a.svg"), "<svg/>").unwrap();
        let file = dir.join("index.md");
        assert!(check_links(&file, "![a](figures/a.svg)").is_ok());
        let err = check_links(&file, "![b](figures/b.svg)").unwrap_err();
        assert!(err.to_string().contains("figures/b.svg"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
