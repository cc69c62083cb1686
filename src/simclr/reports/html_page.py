"""The frame of the HTML report: the document head with its Content-Security-Policy, the styles, the one small
script, and the page's header and end.

The report is a single self-contained file, so its styles and script are inline, and the policy forbids every
other resource.
"""

from __future__ import annotations

from datetime import datetime, timezone

from simclr.reports.html_tables import escape
from simclr.version import __version__

PAGE_END = "</body></html>\n"


def page_start(title: str) -> str:
    """The page up to its body's header: the document head with the policy, styles and script, then ``title``
    and when and by which version the report was generated."""
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    generated = f"generated {escape(created)} by simclr {escape(__version__)}"
    return _PAGE_START.format(title=escape(title), css=_CSS, script=_SCRIPT) + (
        f'<header><h1>{escape(title)}</h1><p class="meta">{generated}</p></header>'
    )


# No resource outside this file may load: the CSP enforces that the report is self-contained.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

_PAGE_START = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>{title}</title><style>{css}</style><script>{script}</script></head><body>"
)

# After load, record on <body> how many pictures there are and how many decoded, so a headless
# browser test can read from the DOM that every inlined image renders.
_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.images, loaded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { loaded++; }
  }
  document.body.setAttribute("data-images-total", String(images.length));
  document.body.setAttribute("data-images-loaded", String(loaded));
});
"""

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1f2328; background: #fff; max-width: 1150px; margin: 0 auto; padding: 16px 24px 64px; }
h1 { font-size: 26px; margin: 8px 0 0; }
h2 { font-size: 21px; margin: 36px 0 4px; padding-bottom: 4px; border-bottom: 2px solid #d0d7de; }
h3 { font-size: 17px; margin: 22px 0 6px; }
code { font: 13px ui-monospace, "DejaVu Sans Mono", monospace; background: #f3f4f6; padding: 1px 4px;
       border-radius: 3px; word-break: break-all; }
.meta { color: #59636e; font-size: 13px; font-weight: normal; margin: 2px 0; }
.note { color: #59636e; font-size: 13px; }
.warn { color: #9a6700; font-size: 12px; }
.warn-box { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 14px; }
th, td { border: 1px solid #d0d7de; padding: 4px 9px; text-align: left; vertical-align: top; }
thead th { background: #f6f8fa; }
table.kv { font-size: 13px; width: 100%; }
table.kv th { background: #f6f8fa; white-space: nowrap; width: 1%; }
table.kv td { word-break: break-word; }
.num { font-variant-numeric: tabular-nums; white-space: nowrap; display: block; text-align: right; }
table.comparison { width: 100%; }
.result { border: 1px solid #d0d7de; border-radius: 6px; padding: 4px 14px 8px; margin: 12px 0; }
.protocol .label, .chips .label { font-size: 12px; text-transform: uppercase; letter-spacing: .05em;
                                  color: #59636e; margin-top: 6px; }
.chips { margin: 6px 0; }
.chip { display: inline-block; font-size: 12px; border: 1px solid #d0d7de; border-radius: 10px;
        padding: 0 7px; margin: 2px 3px 2px 0; }
figure { margin: 12px 0 20px; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; display: block; }
figcaption { color: #59636e; font-size: 13px; margin-top: 4px; }
dl.config { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 0;
            font-size: 13px; margin: 6px 0; border-top: 1px solid #d0d7de; border-left: 1px solid #d0d7de; }
dl.config div { display: flex; gap: 8px; padding: 2px 8px; border-right: 1px solid #d0d7de;
                border-bottom: 1px solid #d0d7de; }
dl.config dt { color: #59636e; }
dl.config dd { margin: 0; font-weight: 600; word-break: break-word; }
"""
