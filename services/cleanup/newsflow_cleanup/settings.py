from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from newsflow_shared import ServiceSettings

# Languages the detector chooses among by default: the world's big news languages.
# Restricting candidates avoids confident guesses of rare neighbours (Pidgin for English, say).
DEFAULT_CANDIDATES = (
    "ar,bg,bn,ca,cs,da,de,el,en,es,et,fa,fi,fr,he,hi,hr,hu,id,it,ja,ko,lt,lv,ms,nl,no,pl,pt,ro,ru,sk,sl,sr,sv,"
    "sw,ta,th,tl,tr,uk,ur,vi,zh"
)


def language_codes(value: str) -> list[str]:
    """The codes of a comma-separated list, as the detector names them (lower case, no spaces)."""
    return [code.strip().lower() for code in value.split(",") if code.strip()]


def _a_few(codes: list[str], shown: int = 5) -> str:
    """The first codes, each cut short, and how many more: a value can be a whole text pasted by mistake, and the
    error is one line of a log."""
    listed = ", ".join(repr(code if len(code) <= 12 else code[:11] + "…") for code in codes[:shown])
    return listed + (f" and {len(codes) - shown} more" if len(codes) > shown else "")


# Every code py3langid's bundled model knows (tests/unit/test_settings_errors.py compares them): a language that is not
# here is never detected, so naming it was a typo that routed every article away.
KNOWN_LANGUAGES = frozenset(
    language_codes(
        "ace,af,am,an,ar,ary,arz,as,az,ba,bcl,be,bg,bn,br,bs,ca,crh,cs,cy,da,de,dz,el,en,eo,es,et,eu,ext,fa,fi,fo,fr,"
        "fuv,fy,ga,gcf,gcr,gd,gl,gom,grc,gu,gug,guw,ha,hbo,he,hi,hr,ht,hu,hy,id,ig,is,it,ja,jv,ka,kab,kik,kk,km,kn,ko,"
        "ku,ky,la,lb,lg,lij,ln,lo,lt,ltg,lv,mg,mk,ml,mn,mr,ms,mt,my,ne,nl,nn,no,nso,oc,om,or,pa,pcm,pl,ps,pt,qu,ro,ru,"
        "rw,sa,sdh,se,si,sk,sl,sn,so,sq,sr,st,sv,sw,ta,te,tg,th,tk,tl,tr,tt,ug,uk,ur,uz,uzs,vec,vi,vo,wa,wuu,xh,yo,yue,"
        "zh,zu,zxx"
    )
)


class CleanupSettings(ServiceSettings):
    """Environment of the cleanup service (see the README's configuration table)."""

    cleanup_quotes: Literal["ascii", "typographic"] = Field(
        default="ascii", description="Make quotes consistent: straight ASCII quotes or typographic ones."
    )
    language_candidates: str = Field(default=DEFAULT_CANDIDATES, description="Comma-separated ISO 639-1 codes.")
    language_min_confidence: float = Field(
        default=0.2, ge=0, le=1, description="Below this the language is reported as 'und' (undetermined)."
    )
    language_short_text_chars: int = Field(
        default=200,
        ge=0,
        description="Text shorter than this also asks lingua (a second detector, ~1 GB once loaded). 0: never.",
    )
    language_allowlist: str = Field(
        default="",
        description="Comma-separated ISO 639-1 codes passed on; others go to TOPIC_UNSUPPORTED. Empty: all.",
    )
    language_allowlist_min_confidence: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="An article leaves for TOPIC_UNSUPPORTED only when its language is at least this sure.",
    )

    @field_validator("language_candidates", "language_allowlist")
    @classmethod
    def _codes_the_detector_knows(cls, value: str) -> str:
        """``LANGUAGE_ALLOWLIST=english,german`` passed, and every article the detector was sure of went to
        TOPIC_UNSUPPORTED; unknown candidates were dropped without a word."""
        if unknown := [code for code in language_codes(value) if code not in KNOWN_LANGUAGES]:
            raise ValueError(
                f"{_a_few(unknown)}: not a language code the detector knows "
                "(ISO 639-1 codes such as en, de, fr; see the README)"
            )
        return value

    @model_validator(mode="after")
    def _allowed_languages_can_be_found(self) -> Self:
        candidates = set(language_codes(self.language_candidates))
        if candidates and (never := [c for c in language_codes(self.language_allowlist) if c not in candidates]):
            raise ValueError(
                f"LANGUAGE_ALLOWLIST names {_a_few(never)}, which LANGUAGE_CANDIDATES leaves out: never detected, "
                "its articles would all go to TOPIC_UNSUPPORTED; add it to LANGUAGE_CANDIDATES"
            )
        return self

    cleanup_near_duplicates: bool = Field(default=True, description="Look for near-duplicates of earlier articles.")
    cleanup_duplicate_threshold: float = Field(
        default=0.45,
        ge=0,
        le=1,
        description="Share of the shorter text found in an earlier one that makes it a duplicate.",
    )
    cleanup_duplicate_days: float = Field(
        default=7,
        ge=0,
        # A century at most: each batch subtracts it from now, and a date before year 1 would fail every batch.
        le=36_500,
        description="Articles first seen longer ago leave the near-duplicate index, as batches go. 0: kept for ever.",
    )
    cleanup_learn_boilerplate: bool = Field(
        default=True, description="Learn each source's recurring lines and remove them."
    )
    cleanup_boilerplate_min_articles: int = Field(
        default=5, ge=2, description="A short line in this many articles of one source is that source's boilerplate."
    )
    cleanup_record_cpu_seconds: float = Field(
        default=10.0,
        gt=0,
        description="CPU time one article may take in cleanup's worker process; longer ones are dead-lettered.",
    )
    cleanup_min_chars: int = Field(default=1, ge=0, description="Articles with less clean text are dead-lettered.")

    @property
    def uses_database(self) -> bool:
        return self.cleanup_near_duplicates or self.cleanup_learn_boilerplate

    @property
    def topics_used(self) -> list[str]:
        return [self.topic_ingested, self.topic_clean, self.topic_unsupported, self.topic_dlq]

    def longest_batch_ms(self) -> int:
        """How long one batch may take when every record uses its whole CPU budget: twice the budget in wall time
        (the worker shares its core), and ~5 s to start the worker again after each record it had to stop (1.2 s
        measured). Cleanup's consumer may go this long between polls; Kafka's default, 5 minutes, was 30 such
        records, and a batch past it is taken from the replica, redone by the next, and taken again, for ever."""
        return max(300_000, int(self.batch_max_records * (2 * self.cleanup_record_cpu_seconds + 5) * 1000))
