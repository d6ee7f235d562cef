"""What cleanup changed, as a readable diff of the text that arrived against the clean text.

Paragraphs are aligned first (difflib on whole paragraphs); a removed paragraph is paired with the
``removed`` entry that says why, and a changed paragraph is diffed word by word, which shows the
repairs (mojibake, spacing, hyphens, quotes). Everything is escaped; only our tags are markup.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, deque
from dataclasses import dataclass

from markupsafe import Markup, escape

from newsflow_shared import Removal
from newsflow_shared.text_safety import unescape_html

_BLANK_LINE = re.compile(r"\n\s*\n")
_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")
# The page is drawn while someone waits, and ingest takes 2 MiB of text: each part of the diff is bounded, so that
# its cost grows with the text, never with its square.
# A word diff costs up to ~40 ns for each pair of tokens (words, spaces, marks) of the two paragraphs, when they
# repeat the same few words. One paragraph's diff is shown whole past 4 million pairs (~2,000 tokens each side,
# 0.16 s at worst), and the rest of the page's past 10 million in all (~0.5 s at worst, with the markup).
_WORD_DIFF_MAX_PAIRS = 4_000_000
_WORD_DIFF_BUDGET_PAIRS = 10_000_000
# A repaired paragraph is looked for among this many arrived ones from where the last was found, the window sliding
# on while none is like it at all (a long run of removed lines). Each comparison takes as many steps as the smaller
# paragraph has distinct characters: tens in English, hundreds in Chinese or in mojibake. The searches that pair
# nothing spend at most _PAIRING_BUDGET steps a page, their first windows included: counted in comparisons, and past
# the first windows only, a whole article of repaired mojibake (no paragraph like any that arrived) took 1-12 s a
# view. One with the same words and letters (cleanup changed quotes, spaces, case) ends the search.
_PAIRING_WINDOW = 32
_PAIRING_BUDGET = 700_000  # steps: ~0.3 s at most
# A paragraph repaired where it stood is one of the next few, and one of them at 0.8 ends the search: a window of
# 32 for each was 16.8 s for an article of 40,000 short paragraphs repaired throughout. The searches that pair
# spend at most _PAIRED_BUDGET steps a page (~1.3 s); past it the rest is shown unpaired.
_NEAR = 4
_PAIRED_BUDGET = 3_000_000
# Why a paragraph went: its exact line in ``removed``, else the one most like it among the first this many left and
# the last _FUZZY_LAST (cleanup lists what it removed top to bottom, then the lead-in teasers it took off the top).
_FUZZY_CANDIDATES = 32
_FUZZY_LAST = 8
# Those comparisons, a page: a page of 24,000 removed lines, none as it arrived (mended mojibake), compared each
# with all 40 (3.7 s); past the budget a removed paragraph is shown without its reason. One nearly the same (0.95)
# ends the search, as cleanup lists the lines in the text's order.
_FUZZY_BUDGET = 100_000  # ~0.4 s at most
_FUZZY_SAME = 0.95
# A comparison's cost is not one step: difflib's quick_ratio takes up to ~300 ns a character of the removal, its
# ratio up to ~6 ns for each pair of characters of the two (measured on shuffles of the same 100 Chinese characters,
# where nothing is junk and nothing matches: 23 ms for two of 2,000). A record of 12 such removals and paragraphs
# passed the cheap checks every time, within the count above, and each view of its page took 41 s. Those two are
# also paid from this estimate, in nanoseconds: ~0.4 s a page at most, then reasons are left out.
_QUICK_NS_PER_CHAR = 300
_RATIO_NS_PER_PAIR = 6
_FUZZY_NS = 400_000_000
# difflib aligns whole paragraphs in time that grows with the square of their number when they repeat (a list of
# the same two lines: 4,000 took 1 s, 40,000 would take ~100). Past this many pairs, once the common start and end
# are set aside, the middle is paired by the bounded search below instead (2,000 x 2,000: 0.3 s at worst).
_ALIGN_MAX_PAIRS = 4_000_000


@dataclass(frozen=True)
class Change:
    """One block of the diff: ``kept``, ``removed`` (with why), ``repaired`` (a word diff) or ``added``."""

    kind: str
    html: Markup
    why: str | None = None


@dataclass(frozen=True)
class Folded:
    """A run of unchanged paragraphs, folded away so the changes stand out."""

    paragraphs: list[Markup]  # already escaped
    kind: str = "folded"

    @property
    def count(self) -> int:
        return len(self.paragraphs)


REMOVED_IN_A_ROW = 100
"""Removed paragraphs in a row the page lists one by one; past them it says how many more. A page of 450,000 "Ad"
lines made an article page of 84 MB."""


@dataclass(frozen=True)
class Unlisted:
    """Removed paragraphs past the first ``REMOVED_IN_A_ROW`` of a run: counted, not listed."""

    count: int
    kind: str = "unlisted"


BLOCKS_SHOWN = 2_000
"""Blocks of the diff a page shows; past them it says how many paragraphs more. Removed lines between kept ones,
20,000 of each, made a page of 40,000 rows."""


@dataclass(frozen=True)
class NotShown:
    """The paragraphs of the diff past ``BLOCKS_SHOWN`` blocks."""

    count: int
    kind: str = "not-shown"


def folded(blocks: list[Change], keep: int = 1) -> list[Change | Folded | Unlisted | NotShown]:
    """Runs of more than ``2 * keep + 1`` unchanged paragraphs keep ``keep`` on each side as context; a run of
    removed paragraphs lists its first ``REMOVED_IN_A_ROW``; the page shows ``BLOCKS_SHOWN`` blocks at most."""
    out: list[Change | Folded | Unlisted | NotShown] = []
    run: list[Change] = []
    removed_in_a_row = 0

    def flush(at_start: bool, at_end: bool) -> None:
        head = 0 if at_start else keep
        tail = 0 if at_end else keep
        if len(run) > head + tail + 1:
            out.extend(run[:head])
            out.append(Folded([c.html for c in run[head : len(run) - tail]]))
            out.extend(run[len(run) - tail :])
        else:
            out.extend(run)
        run.clear()

    for block in blocks:
        removed_in_a_row = removed_in_a_row + 1 if block.kind == "removed" else 0
        if block.kind == "kept":
            run.append(block)
            continue
        flush(at_start=not out, at_end=False)
        if removed_in_a_row <= REMOVED_IN_A_ROW:
            out.append(block)
        elif isinstance(last := out[-1], Unlisted):
            out[-1] = Unlisted(last.count + 1)
        else:
            out.append(Unlisted(1))
    flush(at_start=not out, at_end=True)
    if len(out) > BLOCKS_SHOWN + 1:  # one more block is shown, not said to be
        rest = sum(block.count if isinstance(block, Folded | Unlisted) else 1 for block in out[BLOCKS_SHOWN:])
        out = [*out[:BLOCKS_SHOWN], NotShown(rest)]
    return out


def paragraphs_of(text: str) -> list[str]:
    """Paragraphs as cleanup sees them: blank lines separate them, or each line is one when there are none."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks = _BLANK_LINE.split(text) if _BLANK_LINE.search(text) else text.split("\n")
    return [" ".join(line.strip() for line in block.split("\n") if line.strip()) for block in blocks if block.strip()]


def changes(arrived: str, clean: str, removed: list[Removal]) -> list[Change]:
    """The diff of ``arrived`` against ``clean``, block by block, at a cost that grows with the text's length."""
    before, after = paragraphs_of(arrived), paragraphs_of(clean)
    reasons = _Reasons(removed)
    budget = _Budget(_WORD_DIFF_BUDGET_PAIRS)
    beyond = _Budget(_PAIRING_BUDGET)
    head = _common_start(before, after)
    tail = _common_start(before[head:][::-1], after[head:][::-1])
    out = [Change("kept", Markup(escape(p))) for p in after[:head]]
    before, after, ending = (
        before[head : len(before) - tail],
        after[head : len(after) - tail],
        after[len(after) - tail :],
    )
    if len(before) * len(after) > _ALIGN_MAX_PAIRS:
        out += _replaced(before, after, reasons, budget, beyond)
    else:
        matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "equal":
                out += [Change("kept", Markup(escape(p))) for p in after[j1:j2]]
            elif op == "delete":
                out += [reasons.removal(p) for p in before[i1:i2]]
            elif op == "insert":
                out += [Change("added", Markup(escape(p))) for p in after[j1:j2]]
            else:
                out += _replaced(before[i1:i2], after[j1:j2], reasons, budget, beyond)
    return out + [Change("kept", Markup(escape(p))) for p in ending]


def _common_start(a: list[str], b: list[str]) -> int:
    """How many paragraphs ``a`` and ``b`` begin with alike."""
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def _replaced(before: list[str], after: list[str], reasons: _Reasons, budget: _Budget, beyond: _Budget) -> list[Change]:
    """Pair each clean paragraph with the arrived one most like it (:func:`_most_like`); the unpaired ones were
    removed. Every clean paragraph against every arrived one took 22 s for 2,000 paragraphs whose quotes cleanup
    straightened."""
    out: list[Change] = []
    start = 0
    letters = _Letters(before)
    budgets = (beyond, _Budget(_PAIRED_BUDGET))
    for new in after:
        found = _most_like(new, before, start, budgets, letters)
        if found is None:
            out.append(Change("added", Markup(escape(new))))
            continue
        out += [reasons.removal(p) for p in before[start:found]]
        same = before[found] == new  # (where difflib's alignment was too dear, kept paragraphs come here too)
        out.append(
            Change("kept", Markup(escape(new))) if same else Change("repaired", word_diff(before[found], new, budget))
        )
        start = found + 1
    out += [reasons.removal(p) for p in before[start:]]
    return out


def _most_like(
    new: str, before: list[str], start: int, budgets: tuple[_Budget, _Budget], letters: _Letters
) -> int | None:
    """The index of the arrived paragraph from ``start`` most like ``new`` (difflib's quick ratio, 0.5 at least):
    one of the next :data:`_NEAR` at 0.8 or more, else the best of a window of :data:`_PAIRING_WINDOW`, or of the
    next while none in it comes near. One with ``new``'s very words and letters ends the search: the quick ratio
    only counts characters, and two long paragraphs of one language share most of theirs.

    ``budgets`` are the steps left to searches that pair nothing and to those that pair: each search is charged to
    the first as it goes and, once it pairs, given them back and charged to the second.
    """
    unpaired, paired = budgets
    if not unpaired.left or not paired.left:  # spent: not even the counting
        return None
    counted = Counter(new)
    spent = 0
    words: str | None = None

    def found(index: int) -> int:
        unpaired.left += spent
        paired.left = max(paired.left - spent, 0)
        return index

    for size in (_NEAR, _PAIRING_WINDOW):
        window = start
        while window < len(before):
            best, best_score = None, 0.0
            for index in range(window, min(window + size, len(before))):
                arrived = letters.of(index)
                steps = min(len(arrived), len(counted))
                if not unpaired.take(steps):
                    unpaired.left = 0  # spent: the paragraphs after this one are not counted either
                    return None
                spent += steps
                score = _quick_ratio(arrived, len(before[index]), counted, len(new))
                if score > best_score:
                    best, best_score = index, score
                if score >= 0.9:
                    words = words if words is not None else _normal(new)
                    if _normal(before[index]) == words:
                        return found(index)
            if size == _NEAR:
                if best is not None and best_score >= 0.8:
                    return found(best)
                break  # then the wider search, from the start again
            if best is not None and best_score >= 0.5:
                return found(best)
            window += size
    return None


class _Letters:
    """Each arrived paragraph's count of each character, made once (``Counter`` counts in C): a quick ratio from two
    counts takes as many steps as one has distinct characters (tens), where difflib's walks every character."""

    def __init__(self, paragraphs: list[str]) -> None:
        self.paragraphs = paragraphs
        self.counts: dict[int, Counter[str]] = {}

    def of(self, index: int) -> Counter[str]:
        if index not in self.counts:
            self.counts[index] = Counter(self.paragraphs[index])
        return self.counts[index]


def _quick_ratio(a: Counter[str], length_a: int, b: Counter[str], length_b: int) -> float:
    """difflib's ``SequenceMatcher.quick_ratio``: twice the characters the two have in common (counted with their
    repeats) over both lengths."""
    if len(a) > len(b):
        a, b = b, a
    common = sum(min(count, b[char]) for char, count in a.items())
    return 2 * common / (length_a + length_b) if length_a + length_b else 1.0


class _Budget:
    """What the page's diff may still spend: pairs of tokens on word diffs, or steps on pairing paragraphs."""

    def __init__(self, amount: int) -> None:
        self.left = amount

    def take(self, amount: int) -> bool:
        if amount > self.left:
            return False
        self.left -= amount
        return True


def word_diff(old: str, new: str, budget: _Budget | None = None) -> Markup:
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    pairs = len(a) * len(b)
    if pairs > _WORD_DIFF_MAX_PAIRS or (budget is not None and not budget.take(pairs)):
        return Markup("<del>") + escape(old) + Markup("</del> <ins>") + escape(new) + Markup("</ins>")
    parts: list[Markup] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(escape("".join(a[i1:i2])))
            continue
        if i2 > i1:
            parts.append(Markup("<del>") + escape("".join(a[i1:i2])) + Markup("</del>"))
        if j2 > j1:
            parts.append(Markup("<ins>") + escape("".join(b[j1:j2])) + Markup("</ins>"))
    return Markup("").join(parts)


class _Reasons:
    """Finds why a paragraph was removed: cleanup records the line after repairs, the diff sees it before.

    Each removal is taken once. An exact line is looked up, and the fuzzy search reads only the first and the last
    few removals not taken yet, so a paragraph costs the same however many lines cleanup removed: a scan of the
    list for each paragraph took 12 s of the event loop for a page of 24,000 removed credits that cleanup had
    repaired ("&copy;" to "©"), so that no line matched exactly and none was ever taken off.
    """

    def __init__(self, removed: list[Removal]) -> None:
        # (normalised line, why), in cleanup's order; normalised once, not once a paragraph.
        self.removed = [(_normal(item.what), item.why) for item in removed]
        self._by_line: dict[str, deque[int]] = {}
        for index, (what, _) in enumerate(self.removed):
            self._by_line.setdefault(what, deque()).append(index)
        self._taken = [False] * len(self.removed)
        self._longest = max((len(what) for what, _ in self.removed), default=0)
        # "The next one not taken at or after i" and "the last one at or before i" (shifted by one, 0 for none),
        # each a forest whose roots are the removals not taken: taking one links it to its neighbour.
        self._after = list(range(len(self.removed) + 1))
        self._before = list(range(len(self.removed) + 1))
        self._comparisons = _Budget(_FUZZY_BUDGET)
        self._work = _Budget(_FUZZY_NS)

    def removal(self, paragraph: str) -> Change:
        why = self._why(paragraph)
        return Change("removed", Markup(escape(paragraph)), why or "removed with its surroundings by cleanup")

    def _why(self, paragraph: str) -> str | None:
        if not self.removed:
            return None
        key = _normal(paragraph)
        same = self._by_line.get(key)
        while same:
            if not self._taken[index := same.popleft()]:
                return self._take(index)
        if 2 * len(key) > 3 * self._longest:
            # No removal can be 0.8 like it (twice the shorter's length over both is under that): indexing a long
            # paragraph for nothing cost 0.4 ms a kilobyte, seconds for a whole article of them.
            return None
        # Mostly in the text's order: the one for this paragraph is among the first left, or the last (teasers).
        best, best_score = None, 0.0
        # One matcher for the paragraph: difflib indexes its second sequence once, and each candidate is only set as
        # the first (a matcher made anew for each of the 40 cost ~0.2 ms a paragraph).
        matcher = difflib.SequenceMatcher(None, "", key)
        for index in self._candidates():  # the first of equals wins: the text's order
            candidate = self.removed[index][0]
            matcher.set_seq1(candidate)
            if not self._comparisons.take(1):
                break
            if matcher.real_quick_ratio() < max(0.8, best_score):
                continue
            if not self._work.take(len(candidate) * _QUICK_NS_PER_CHAR):
                break
            if matcher.quick_ratio() < max(0.8, best_score):
                continue
            if not self._work.take(len(candidate) * len(key) * _RATIO_NS_PER_PAIR):
                break
            if (score := matcher.ratio()) >= 0.8 and score > best_score:
                best, best_score = index, score
                if score >= _FUZZY_SAME:
                    break
        return self._take(best) if best is not None else None

    def _candidates(self) -> list[int]:
        """The first _FUZZY_CANDIDATES removals not taken and the last _FUZZY_LAST, in cleanup's order."""
        first, index = [], _root(self._after, 0)
        while index < len(self.removed) and len(first) < _FUZZY_CANDIDATES:
            first.append(index)
            index = _root(self._after, index + 1)
        last, shifted = [], _root(self._before, len(self.removed))
        while shifted > 0 and len(last) < _FUZZY_LAST:
            last.append(shifted - 1)
            shifted = _root(self._before, shifted - 1)
        return sorted({*first, *last})

    def _take(self, index: int) -> str:
        self._taken[index] = True
        self._after[index] = index + 1
        self._before[index + 1] = index
        return self.removed[index][1]


def _root(parent: list[int], node: int) -> int:
    """The root of ``node`` in the forest ``parent``, halving the path on the way (amortised near constant)."""
    while parent[node] != node:
        parent[node] = parent[parent[node]]
        node = parent[node]
    return node


def _normal(text: str) -> str:
    """A line as cleanup's removal and the text that arrived both read: cleanup records it after its repairs, which
    turn entities into characters ("&copy; Reuters" into "© Reuters")."""
    return " ".join(re.sub(r"[\W_]+", " ", unescape_html(text).casefold()).split())
