"""Generates the API reference at build time: one page per module of python/deepflash.

Run by mkdocs-gen-files (mkdocs.yml); it walks the package as it is on disk, so a module that is
added, moved or split appears in the reference without editing a list. The pages and their
navigation (reference/SUMMARY.md, read by mkdocs-literate-nav) exist only in the built site.
"""
from __future__ import annotations

from pathlib import Path

import mkdocs_gen_files

PACKAGE = Path(__file__).resolve().parent.parent / "python"

nav = mkdocs_gen_files.Nav()
for path in sorted((PACKAGE / "deepflash").rglob("*.py")):
    module = path.relative_to(PACKAGE).with_suffix("")
    parts = tuple(module.parts)
    if parts[-1] == "__main__":
        continue
    if parts[-1] == "__init__":
        parts = parts[:-1]
        doc = Path("reference", *parts, "index.md")
    else:
        doc = Path("reference", *parts).with_suffix(".md")
    nav[parts] = doc.relative_to("reference").as_posix()
    with mkdocs_gen_files.open(doc, "w") as page:
        page.write(f"# `{'.'.join(parts)}`\n\n::: {'.'.join(parts)}\n")
    mkdocs_gen_files.set_edit_path(doc, path.relative_to(PACKAGE.parent))

with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as summary:
    summary.writelines(nav.build_literate_nav())
