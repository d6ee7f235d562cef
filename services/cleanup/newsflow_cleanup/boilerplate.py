"""Lines that are not the article: menus, prompts, credits. Each removal says why."""

from __future__ import annotations

import re

from newsflow_shared import Removal

# Whole-line patterns, matched case-insensitively on short lines only: a long line
# that happens to start with "Read more" is prose, not a prompt.
_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "navigation menu item",
        re.compile(r"^(latest|top|breaking|more|related|trending) (news|stories|articles|headlines)$"),
    ),
    (
        "navigation menu item",
        re.compile(r"^(home|menu|skip to (main )?content|back to top|next article|previous article)$"),
    ),
    ("advertisement marker", re.compile(r"^(advertisement|advertising|sponsored( content)?|ad|promoted)$")),
    (
        "share prompt",
        re.compile(r"^(share( this( article| story| page)?)?( on \w+)?|share via .*|tweet|email|print|copy link)$"),
    ),
    ("read-more link", re.compile(r"^(read more|see also|related|more on this story|more from [\w ]+)\s*[:…>»-].*$")),
    ("read-more link", re.compile(r"^(read more|continue reading|click here to read more)\W*$")),
    ("newsletter prompt", re.compile(r"^.*\b(sign up|subscribe)\b.*\b(newsletter|updates|alerts|inbox)\b.*$")),
    ("social prompt", re.compile(r"^(follow|like) us on .*$")),
    (
        "photo credit",
        re.compile(
            r"^(\(?(photo|image|picture|credit|photograph)s?( credit)?\s*[:/].*\)?|[\w .]+/ ?(getty images|reuters|afp|ap|epa)( via [\w ]+)?)$"
        ),
    ),
    ("copyright notice", re.compile(r"^(©|\(c\)|copyright\b).*$")),
    ("comments prompt", re.compile(r"^(\d+ )?comments?( \(\d+\))?$|^leave a comment$|^join the conversation$")),
]
_MAX_RULE_LINE = 120


def strip_boilerplate(paragraphs: list[str]) -> tuple[list[str], list[Removal]]:
    """Drop boilerplate paragraphs; return what is kept and a record of each removal."""
    kept: list[str] = []
    removed: list[Removal] = []
    for paragraph in paragraphs:
        why = _matching_rule(paragraph)
        if why:
            removed.append(Removal(what=paragraph, why=f"rule: {why}"))
        else:
            kept.append(paragraph)
    return kept, removed


def _matching_rule(paragraph: str) -> str | None:
    if len(paragraph) > _MAX_RULE_LINE:
        return None
    line = paragraph.strip().lower().rstrip(" .:!|›»>")
    for why, pattern in _RULES:
        if pattern.match(line):
            return why
    return None
