"""Lines that are not the article: menus, prompts, credits. Each removal says why."""

from __future__ import annotations

import re

from newsflow_shared import Removal


def _rule(*alternatives: str) -> re.Pattern[str]:
    """One whole-line pattern from alternatives, matched on the lower-cased line."""
    return re.compile("^(?:" + "|".join(alternatives) + ")$")


# Alternatives both the whole-line rules and the rules for sentences use.
# A label, then a separator: a colon, bar or arrow, or a dash with space before it ("Live - ..."); a hyphen joined to
# the word is a compound ("Live-streaming of the final ...").
_SEPARATOR = r"(\s*[:|»>]|\s+[–—-]|[–—])"
_LABELLED_LINK = (
    r"(read more|read|also read|see also|related|more on this story|more from [\w ]+|watch|listen|video"
    r"|opinion|explainer|analysis|live|recommended|further reading)" + _SEPARATOR + ".*"
)
_CLICK_TO_SHARE = r"(click|tap) (here )?to (share|email|print)\b.*"
_DELIVERED_TO_YOU = r".*\b(headlines|news|stories|updates)\b.*\b(delivered|straight) to your (inbox|phone|email)\b.*"
_SUPPORT_US = (
    r"support (our |independent |quality |local )+(journalism|reporting).*|become a (member|subscriber|supporter).*"
)

# Whole-line patterns, matched case-insensitively on short lines only: a long line that happens to
# start with "Read more" is prose, not a prompt. Each kind reads as the `why` of a removal.
_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "navigation menu item",
        _rule(
            r"(latest|top|breaking|more|related|trending|popular|other|recent) (news|stories|articles|headlines|posts)",
            r"home|menu|search|skip to (main )?content|back to top|jump to .*|next article|previous article",
            r"most (read|popular|viewed|shared|commented)( (articles|stories|today|this week))?",
            r"(recommended|suggested|picked|selected) for you|recommended( (stories|articles|reading))?",
            r"you (may|might) (also )?(like|enjoy|be interested in)|editor'?s'? picks?|trending( now)?|up next",
            r"(more|also) in [\w ]+|more from [\w ]+|in other news|popular now|don'?t miss|must read",
            r"related (topics|articles|stories|links|content)|topics|tags?( *:.*)?|filed under( *:.*)?",
        ),
    ),
    (
        "advertisement marker",
        _rule(
            r"advertisement|advertising|sponsored( content)?|ad|promoted( content)?|paid (post|content)",
            r"(story|article|content) continues (below|after)( (the )?(ad|advert|advertisement))?",
            r"continue reading( (below|the (main )?story|the article))?|scroll (down )?to continue( with content)?",
        ),
    ),
    (
        "share prompt",
        _rule(
            r"share( this| the)?( article| story| page| post)?( on \w+| via \w+)?|share via .*",
            r"(tweet|email|print|copy link|whatsapp|facebook|twitter|linkedin|pinterest|reddit)( this( \w+)?)?",
            _CLICK_TO_SHARE,
        ),
    ),
    (
        "read-more link",
        _rule(
            _LABELLED_LINK,
            r"(read|watch|listen) next"
            + _SEPARATOR
            + r".*|read more|read the full (story|article)|click here( to read more)?",
            r"(watch|play) (the )?video|watch|listen( now| live)?|video",
        ),
    ),
    (
        "audio prompt",
        _rule(r"listen to (this|the) (article|story)( .*)?|\d+ min(ute)?s? (read|listen)|audio version( .*)?"),
    ),
    (
        "newsletter prompt",
        _rule(
            r".*\b(sign up|subscribe|register)\b.*\b(newsletter|updates|alerts|inbox|briefing|email)s?\b.*",
            _DELIVERED_TO_YOU,
            r"(click here to )?subscribe( now| today| here)?( for .*| to .*)?|already a subscriber\?.*",
            _SUPPORT_US,
            r"newsletters?|(sign up|subscribe) to our .*",
        ),
    ),
    (
        "social prompt",
        _rule(
            r"(follow|like|join|find) us on .*|follow @\w+.*|follow [\w ]+ on (x|twitter|facebook|instagram).*",
            r"join our [\w ]*(channel|group|community).*|download (our|the) [\w ]*app.*|get the [\w ]*app.*",
            r"((click|tap) here to )?(download|get|install) our .*\bapp\b.*|follow (our|the) live (coverage|updates|blog).*",
        ),
    ),
    (
        "photo credit",
        _rule(
            r"\(?(photo|image|picture|photograph|video|illustration)s?( credit| by| source)?\s*[:/,].*\)?",
            r"\(?(photo|image|picture)s? by .*\)?|image caption[:,]? .*|getty images|reuters|afp|ap photo|pictured:.*",
            r"[\w .]+/ ?(getty images|reuters|afp|ap|epa|shutterstock|alamy|pa)( via [\w ]+)?\)?",
        ),
    ),
    ("copyright notice", _rule(r"(©|\(c\)|copyright\b).*", r".*\ball rights reserved\b.*")),
    (
        "comments prompt",
        _rule(
            r"(\d+ )?comments?( \(\d+\))?|(leave|add|post|view|show|read) (a |the )?comments?( \(\d+\))?",
            r"join the (conversation|discussion|debate)",
            r"report (an error|a (correction|mistake|typo))|(found|spotted) (an error|a mistake|a typo)\?.*",
        ),
    ),
    ("cookie notice", _rule(r".*\b(we use cookies|accept (all )?cookies|cookie (settings|policy|preferences))\b.*")),
    (
        "page furniture",
        _rule(
            r"loading( \.\.\.|\.\.\.|…)?|(this|the) (article|story) (was|has been) .*\bpublished\b.*",
            # A time stamp line, not a sentence: "Updated 14:32 GMT", "Published: 10 March 2026".
            r"(last |first )?(updated|published|posted|modified)( on| at)?:?\s+(\d|(mon|tue|wed|thu|fri|sat|sun"
            r"|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b)[\w ,:./+-]*",
            r"breaking( news)?|live( updates| blog| coverage)?|(source|sources|via) *: *[\w .,&-]+",
            r"(hide|show|toggle) caption|(click|tap) to (enlarge|expand|zoom)|enlarge (this )?image|more on this (topic|story)",
            r"this (story|article|page) is (developing|being updated).*|follow (the|this) (author|reporter|writer|topic)",
            r"(enjoy|get) unlimited (digital )?access.*|.*\breaders like you\b.*|(don'?t|do not) have an account\?.*",
        ),
    ),
    ("wire credit", _rule(r"(additional )?(reporting|editing|writing) by.*")),
]
_RULES_BY_WHY = dict(_RULES)
# What each kind still removes from a line that reads as a sentence (it ends in a full stop and has
# _SENTENCE_WORDS words or more): only the page talking about itself ("we use cookies", "sign up to our
# newsletter", "this article was first published"). The whole-line rules took news too: "Video, shared
# widely online, showed the moment the bridge collapsed." as a photo credit, "Copyright lawyers said ..."
# as a copyright notice, "Sources: three ministers are set to resign, officials told the paper." as page
# furniture. A kind not here never removes a sentence.
_IN_SENTENCES: dict[str, re.Pattern[str]] = {
    "share prompt": _rule(_CLICK_TO_SHARE),
    "audio prompt": _rule(r"listen to (this|the) (article|story)( .*)?"),
    "newsletter prompt": _rule(
        r"(sign up|subscribe|register)\b.*\b(newsletter|updates|alerts|inbox|briefing|email)s?\b.*",
        _DELIVERED_TO_YOU,
        # An imperative "subscribe (now) to/for" or "sign up for" at the start, or after "please": not a quote's
        # "subscribe to our values", nor "Sign up numbers".
        r"(click here to )?(subscribe|sign up)( now| today| here)? (to|for)\b.*",
        r".*\bplease (subscribe|sign up)( now| today| here)? (to|for)\b.*",
        r"already a subscriber\?.*",
        _SUPPORT_US,
    ),
    "social prompt": _RULES_BY_WHY["social prompt"],
    # "Read more: Government announces new plan for schools." is a link: the separator after the label marks it.
    "read-more link": _rule(_LABELLED_LINK),
    "photo credit": _rule(
        r"\(?(photo|image|picture|photograph|illustration)s?( credit| by| source)?\s*[:/].*\)?",
        r"\(?(photo|image|picture)s? by .*\)?|image caption[:,]? .*|pictured:.*",
    ),
    "copyright notice": _rule(r"(©|\(c\)|copyright *(©|\(c\)|\d{4})).*", r".*\ball rights reserved\b.*"),
    "comments prompt": _rule(
        r"join the (conversation|discussion|debate)",
        r"report (an error|a (correction|mistake|typo))|(found|spotted) (an error|a mistake|a typo)\?.*",
    ),
    "cookie notice": _rule(
        r".*\b(we use cookies|accept all cookies|(our|this (site|website)'?s?) cookie (settings|policy|preferences))\b.*"
    ),
    "page furniture": _rule(
        r"this (article|story) (was|has been) (originally |first )?(published|updated)\b.*",
        r"(this|the) (article|story) was (originally|first) published\b.*",
        r"this (story|article|page) is (developing|being updated).*|(enjoy|get) unlimited (digital )?access.*",
        r".*\breaders like you\b.*|(don'?t|do not) have an account\?.*",
    ),
    "wire credit": _RULES_BY_WHY["wire credit"],
}
# Full stops of the scripts cleanup meets: Latin, Devanagari and Bengali (danda), Arabic and Urdu, CJK (full
# width), Ethiopic, Burmese, Armenian. A line ending in one reads as a sentence whatever its language.
SENTENCE_STOPS = (".", "!", "?", "।", "॥", "۔", "؟", "。", "！", "？", "።", "။", "։")
_CLOSING = "\"'\u201d\u2019\u00bb)]"
_SENTENCE_WORDS = 6


def reads_as_sentence(paragraph: str) -> bool:
    """It ends in a full stop (before any closing quote or bracket) and has a sentence's words."""
    return paragraph.rstrip().rstrip(_CLOSING).endswith(SENTENCE_STOPS) and len(paragraph.split()) >= _SENTENCE_WORDS


# A short line that is not a sentence (no closing stop) and speaks the page's own language:
# buttons, account links, app prompts. Prose ends in a stop; headings rarely say "log in".
_INTERFACE_WORDS = re.compile(
    r"\b(share|subscribe|subscriber|sign in|sign up|log in|login|newsletter|inbox|comment|comments|bookmark"
    r"|save (this |the )?(article|story)|gift (this |the )?(article|story)|open in (the )?app|download|app store"
    r"|cookies?|sponsored|advertisement|advert|click|tap here|see more|view more|load more|show more"
    r"|(additional )?reporting by|editing by|writing by|compiled by)\b"
)
_MAX_INTERFACE_WORDS = 8
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
    stripped = paragraph.strip()
    line = stripped.lower().rstrip(" .:!|›»>")
    if reads_as_sentence(stripped):
        return next((why for why, pattern in _IN_SENTENCES.items() if pattern.match(line)), None)
    for why, pattern in _RULES:
        if pattern.match(line):
            return why
    words = len(line.split())
    if words <= _MAX_INTERFACE_WORDS and not stripped.endswith((".", "!", '"', "'")) and _INTERFACE_WORDS.search(line):
        return "page interface text"
    return None


_SENTENCE_END = (*SENTENCE_STOPS, '"', "'", "\u201d", "\u2019", ")")
_MAX_TEASER_WORDS = 12
_LEAD_IN_PARAGRAPHS = 4  # a text with no full stops at all must not lose its short lines


def strip_lead_in_teasers(paragraphs: list[str]) -> tuple[list[str], list[Removal]]:
    """Drop a short line left between the standfirst and the story's first sentence.

    Pages put "related" headlines, bylines and datelines there; copied as text they read as a
    short line without a full stop, right after the (longer) standfirst, before any paragraph
    that ends like a sentence. A subheading inside the story is never touched: only the first
    few lines, before the story starts, are looked at.
    """
    removed: list[Removal] = []
    kept: list[str] = []
    in_lead_in = True
    for position, paragraph in enumerate(paragraphs):
        ends_a_sentence = paragraph.rstrip().endswith(_SENTENCE_END)
        in_lead_in = in_lead_in and position < _LEAD_IN_PARAGRAPHS
        previous = kept[-1] if kept else None
        if (
            in_lead_in
            and not ends_a_sentence
            and previous is not None
            and not previous.rstrip().endswith(_SENTENCE_END)
            and len(paragraph.split()) <= _MAX_TEASER_WORDS
            and len(paragraph.split()) < len(previous.split())
        ):
            why = "rule: short line between the standfirst and the story (a teaser, byline or dateline)"
            removed.append(Removal(what=paragraph, why=why))
            continue
        in_lead_in = in_lead_in and not ends_a_sentence
        kept.append(paragraph)
    return kept, removed
