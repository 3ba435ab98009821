#!/usr/bin/env python3
"""Checks the built book's internal links: every relative href names a page that was built and,
when it has a #fragment, an id on that page. External links (http, mailto) are not fetched.

A link that leaves the book (`../../../SECURITY.md` from a page in docs/book/src) is a link
into the repository: it must name a file that exists there (mdBook turns `.md` into `.html`).

Usage: python3 scripts/check-book.py BUILT_BOOK_DIR [BOOK_SRC_DIR]
"""
import html.parser
import os
import sys
import urllib.parse


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def in_repo(src, rel, path):
    """Whether a link out of the book names a file of the repository."""
    target = os.path.normpath(os.path.join(src, os.path.dirname(rel), path))
    if os.path.exists(target):
        return True
    return target.endswith(".html") and os.path.exists(target[: -len(".html")] + ".md")


def main(root, src):
    pages = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(".html"):
                path = os.path.join(dirpath, name)
                page = Page()
                with open(path, encoding="utf-8") as f:
                    page.feed(f.read())
                pages[os.path.relpath(path, root)] = page
    broken = []
    for rel, page in sorted(pages.items()):
        for href in page.links:
            url = urllib.parse.urlparse(href)
            if url.scheme or href.startswith("//"):
                continue
            target = rel if not url.path else os.path.normpath(
                os.path.join(os.path.dirname(rel), urllib.parse.unquote(url.path)))
            if target.startswith(".."):
                if not in_repo(src, rel, urllib.parse.unquote(url.path)):
                    broken.append(f"{rel}: {href} (not in the repository)")
                continue
            if target.endswith("/") or os.path.isdir(os.path.join(root, target)):
                target = os.path.join(target, "index.html")
            if target not in pages:
                if not os.path.exists(os.path.join(root, target)):
                    broken.append(f"{rel}: {href} (no such page)")
                continue
            if url.fragment and urllib.parse.unquote(url.fragment) not in pages[target].ids:
                broken.append(f"{rel}: {href} (no #{url.fragment} on {target})")
    # mdBook's own print page repeats every link; report each broken link once.
    broken = sorted(set(b for b in broken if not b.startswith("print.html")))
    for b in broken:
        print("broken link:", b)
    print(f"book: {len(pages)} pages, {sum(len(p.links) for p in pages.values())} links, "
          f"{len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "docs/book/src"))
