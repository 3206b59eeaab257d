"""Shelf and packing labels as print-exact PDFs: data in, PDF bytes out.

No database, no Flask request: the views look the records up and call
`documents.render_shelf_labels` / `documents.render_packing_label` with plain values,
so tests and the CLI can call them too. The modules, from the sheet to the PDF:

- `layouts`: the sheet catalogue (manufacturers' templates) and where the code and the
  text go on one label; whole printer dots (a module is an integer number of dots at the
  printer's resolution, at least 0.33 mm, every code snapped to the dot grid) are the
  toolkit's printing pieces, shared with the CRM's business cards;
- `limits`: the work one PDF may take (labels, pages, printer dots), computed from the
  request before anything is drawn, and the checks of the printing arguments;
- `documents`: the HTML, and the PDF written by the toolkit's sandboxed `html_to_pdf`
  (which loads WeasyPrint with the first print, not at start-up).
"""

from __future__ import annotations

__all__: list[str] = []
