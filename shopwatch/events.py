"""The event model: names, fields, limits and their validation.

An event is what a shop (its server, the RUM snippet, an importer) tells Shopwatch
happened. Names follow Google Analytics 4's e-commerce conventions, plus Shopwatch's
own names for what GA4 lacks; any other valid name is kept as a custom event.

Validation is declared in the types below and enforced by msgspec while decoding, so
the hot path runs at C speed. The limits are part of the public schema
(``docs/events.md``): identifiers and names over their limit are rejected with the
field and the reason; page and referrer URLs are truncated (and flagged) after
scrubbing because a long URL is still useful.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from shopwatch.privacy import luhn_ok

GA4_NAMES: Final = frozenset({
    "page_view", "view_item", "view_item_list", "select_item", "search", "add_to_cart",
    "remove_from_cart", "view_cart", "begin_checkout", "add_shipping_info",
    "add_payment_info", "purchase", "refund", "login", "sign_up",
})
SHOPWATCH_NAMES: Final = frozenset({
    "login_failed", "payment_declined", "profile_updated", "password_changed",
    "order_cancelled", "survey_response", "support_contact",
})
KNOWN_NAMES: Final = GA4_NAMES | SHOPWATCH_NAMES

# --- limits (documented in docs/events.md; change both together) -------------------
MAX_NAME_LENGTH: Final = 64
MAX_ID_LENGTH: Final = 128
MAX_UTM_LENGTH: Final = 256
MAX_URL_INPUT_LENGTH: Final = 8192  # rejected above this
MAX_URL_LENGTH: Final = 2048  # stored URLs are truncated to this, flagged `truncated`
MAX_DEVICE_FIELD_LENGTH: Final = 64
MAX_PARAMS: Final = 50
MAX_PARAM_KEY_LENGTH: Final = 40
MAX_PARAM_STRING_LENGTH: Final = 1024
MAX_LIST_LENGTH: Final = 200  # items[] and any other list param
MAX_IP_LENGTH: Final = 64  # an IPv6 address with a zone is under 64 characters
MAX_USER_AGENT_INPUT_LENGTH: Final = 1024  # rejected above this; stored cut to 512
MONEY_LIMIT: Final = 1e15

# Regex ``pattern`` constraints cost msgspec ~3 µs per event, more than decoding itself;
# the few patterns (name, currency, country) are checked in Python with a cache instead.
NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
PARAM_KEY_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")
COUNTRY_RE: Final = re.compile(r"[A-Z]{2}")
CARD_BIN_RE: Final = re.compile(r"[0-9]{6,8}")
Name = Annotated[
    str,
    Meta(min_length=1, max_length=MAX_NAME_LENGTH,
         description="GA4 name or custom name: a letter, then letters, digits or _"),
]
Ident = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Utm = Annotated[str, Meta(max_length=MAX_UTM_LENGTH)]
Url = Annotated[str, Meta(max_length=MAX_URL_INPUT_LENGTH)]
Short = Annotated[str, Meta(max_length=MAX_DEVICE_FIELD_LENGTH)]
Text = Annotated[str, Meta(max_length=MAX_PARAM_STRING_LENGTH)]
Money = Annotated[float, Meta(ge=-MONEY_LIMIT, le=MONEY_LIMIT)]
Currency = Annotated[str, Meta(min_length=3, max_length=3,
                                description="ISO 4217 code, upper case, e.g. EUR")]
Country = Annotated[str, Meta(min_length=2, max_length=2,
                               description="ISO 3166-1 alpha-2, upper case, e.g. DE")]
Pixels = Annotated[int, Meta(ge=0, le=100_000)]

ParamKey = Annotated[str, Meta(min_length=1, max_length=MAX_PARAM_KEY_LENGTH)]
Scalar = Text | int | float | bool | None
# Nesting is bounded by the types: params -> list -> object -> scalar (or list of scalars).
Leaf = Annotated[dict[ParamKey, Scalar | Annotated[list[Scalar], Meta(max_length=MAX_LIST_LENGTH)]],
                 Meta(max_length=MAX_PARAMS)]
ParamValue = (
    Text | int | float | bool | None
    | Annotated[list[Text | int | float | bool | Leaf | None], Meta(max_length=MAX_LIST_LENGTH)]
    | Leaf
)
Params = Annotated[dict[ParamKey, ParamValue], Meta(max_length=MAX_PARAMS)]


# Structs below are decoded by the thousand per request and cannot form reference
# cycles (they hold only JSON values), so they are kept out of the cyclic GC (gc=False):
# under load the collector otherwise spends a fifth of the request loop rescanning them.


class Device(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """What the shopper's device is; all optional."""

    category: Short | None = None  # desktop, mobile, tablet, bot, other
    browser: Short | None = None
    browser_version: Short | None = None
    os: Short | None = None
    os_version: Short | None = None
    language: Short | None = None
    country: Country | None = None
    screen_width: Pixels | None = None
    screen_height: Pixels | None = None


class Event(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """One incoming event, as decoded from the wire (before scrubbing and enrichment)."""

    name: Name
    id: Ident | None = None
    ts: int | float | Annotated[str, Meta(max_length=64)] | None = None
    session_id: Ident | None = None
    anonymous_id: Ident | None = None
    user_id: Ident | None = None
    page: Url | None = None
    referrer: Url | None = None
    utm_source: Utm | None = None
    utm_medium: Utm | None = None
    utm_campaign: Utm | None = None
    utm_term: Utm | None = None
    utm_content: Utm | None = None
    device: Device | None = None
    params: Params | None = None
    # The shopper's address and browser, for events the shop's server sends (its own
    # address is the request's). The pipeline turns ``ip`` into ``net_prefix`` and
    # ``net_hash`` and removes it: the address itself is never stored.
    ip: Annotated[str, Meta(max_length=MAX_IP_LENGTH,
                            description="the shopper's IPv4 or IPv6 address")] | None = None
    user_agent: Annotated[str, Meta(max_length=MAX_USER_AGENT_INPUT_LENGTH)] | None = None
    # Set by Shopwatch only (an event that carries one is rejected): the network of
    # ``ip`` (203.0.113.0/24, 2001:db8:1::/48) and a keyed hash of the whole address.
    net_prefix: Short | None = None
    net_hash: Short | None = None


class Item(msgspec.Struct, omit_defaults=True, gc=False):
    """The typed part of one ``items[]`` entry; other keys are kept as they are."""

    item_id: Ident | None = None
    item_name: Text | None = None
    item_category: Text | None = None
    item_brand: Text | None = None
    item_variant: Text | None = None
    price: Money | None = None
    quantity: Annotated[int, Meta(ge=0, le=1_000_000)] | None = None
    discount: Money | None = None
    coupon: Text | None = None


# support_contact times: RFC 3339 with an offset, or epoch milliseconds; durations in
# seconds (at most a year: anything longer is a unit mistake).
ContactTime = int | float | Annotated[str, Meta(max_length=64)]
Seconds = Annotated[float, Meta(ge=0, le=366 * 86400)]
CONTACT_CHANNELS: Final = frozenset({"phone", "chat", "email", "other"})


class KnownParams(msgspec.Struct, omit_defaults=True, gc=False):
    """Params whose type Shopwatch relies on; unknown params are kept as custom ones."""

    transaction_id: Ident | None = None
    value: Money | None = None
    currency: Currency | None = None
    tax: Money | None = None
    shipping: Money | None = None
    coupon: Text | None = None
    payment_method: Short | None = None
    gateway: Short | None = None
    reason: Text | None = None
    method: Short | None = None
    search_term: Text | None = None
    score: Annotated[float, Meta(ge=0, le=10)] | None = None
    # survey_response (docs/feedback.md): nps, csat or a custom survey id; the score is
    # checked per survey in check_params (NPS 0-10, CSAT 1-5, whole numbers)
    survey: Short | None = None
    comment: Text | None = None
    question: Text | None = None
    items: list[Item] | None = None
    card_fingerprint: Short | None = None  # the shop's stable token of a card, never its number
    card_bin: str | None = None  # the card's first 6-8 digits (checked in check_params)
    # profile_updated: what changed (email, password, address, phone, name, payment)
    fields: Annotated[list[Short], Meta(max_length=MAX_LIST_LENGTH)] | None = None
    # support_contact (docs/service-desk.md): one contact with the service desk.
    contact_id: Ident | None = None
    # phone, chat, email or other (checked in check_params when the params are a
    # contact record's: with contact_id or a contact time)
    channel: Short | None = None
    queued_at: ContactTime | None = None
    answered_at: ContactTime | None = None
    abandoned_at: ContactTime | None = None
    talk_s: Seconds | None = None
    hold_s: Seconds | None = None
    acw_s: Seconds | None = None  # after-contact work
    first_contact_resolved: bool | None = None
    agent: Ident | None = None


class Batch(msgspec.Struct, gc=False):
    """The JSON body ``{"events": [...]}``."""

    events: list[Event]


class RawBatch(msgspec.Struct, gc=False):
    """The same body with events left undecoded, to report errors one event at a time."""

    events: list[msgspec.Raw]


batch_decoder: Final = msgspec.json.Decoder(Batch)
array_decoder: Final = msgspec.json.Decoder(list[Event])
raw_batch_decoder: Final = msgspec.json.Decoder(RawBatch)
raw_array_decoder: Final = msgspec.json.Decoder(list[msgspec.Raw])
event_decoder: Final = msgspec.json.Decoder(Event)


def describe_error(exc: msgspec.MsgspecError, prefix: str = "", whole: str = "event") -> str:
    """Turn msgspec's message into ``"<field>: <reason>"``.

    msgspec says ``Expected `float`, got `str` - at `$.params.value```; users read
    ``params.value: expected float, got str``. ``whole`` names the object itself.
    """
    text = str(exc)
    field = ""
    if " - at `key` in `$" in text:  # a dict key (e.g. a param name) is invalid
        text, _, path = text.partition(" - at `key` in `$")
        field = path.rstrip("`").lstrip(".")
        text = f"invalid key: {text[:1].lower()}{text[1:]}"
    elif " - at `$" in text:
        text, _, path = text.partition(" - at `$")
        field = path.rstrip("`").lstrip(".")
    if text.startswith("Object contains unknown field "):
        unknown = text.removeprefix("Object contains unknown field ").strip("`")
        field = f"{field}.{unknown}" if field else unknown
        text = "unknown field (see docs/events.md for the fields an event may have)"
    field = f"{prefix}{'.' if prefix and field and not field.startswith('[') else ''}{field}"
    text = text.replace("`", "")
    text = text[:1].lower() + text[1:]
    return f"{field or whole}: {text}"


# The scales of the standard surveys (docs/feedback.md); custom surveys keep 0-10.
SURVEY_SCALES: Final = {"nps": (0, 10), "csat": (1, 5)}


def check_survey_score(survey: str, score: Any) -> str | None:
    """An NPS or CSAT response's score: required, a whole number on its scale."""
    low, high = SURVEY_SCALES[survey]
    article = "an" if survey == "nps" else "a"
    scale = f"{article} {survey.upper()} score is a whole number from {low} to {high}"
    if score is None:
        return f"params.score: missing; {scale}"
    if isinstance(score, bool) or not isinstance(score, int | float):
        return f"params.score: expected a number, got {type(score).__name__}; {scale}"
    if not float(score).is_integer() or not low <= score <= high:
        return f"params.score: {score!r} is not valid; {scale}"
    return None


def check_params(params: dict[str, Any]) -> str | None:
    """Check the typed params (``value`` must be a number, ...); ``None`` when valid."""
    survey = params.get("survey")
    if isinstance(survey, str) and survey.strip().lower() in SURVEY_SCALES:
        error = check_survey_score(survey.strip().lower(), params.get("score"))
        if error is not None:
            return error
    try:
        known = msgspec.convert(params, KnownParams)
    except msgspec.ValidationError as exc:
        return describe_error(exc, "params")
    if known.currency is not None and not CURRENCY_RE.fullmatch(known.currency):
        return f"params.currency: {known.currency!r} is not an upper-case ISO 4217 code like EUR"
    if known.card_bin is not None and not CARD_BIN_RE.fullmatch(known.card_bin):
        # The value is not echoed: it may be the whole card number.
        return (f"params.card_bin: {len(known.card_bin)} characters; must be the card's "
                "first 6-8 digits, never the card number")
    if (known.contact_id is not None or known.queued_at is not None
            or known.answered_at is not None or known.abandoned_at is not None):
        # Only a contact record's channel is checked: other events (a survey's, say)
        # may use a param of that name for something else.
        error = _check_contact(known)
        if error is not None:
            return error
    fingerprint = known.card_fingerprint
    if fingerprint is not None:
        digits = fingerprint.replace(" ", "").replace("-", "")
        if digits.isdigit() and 13 <= len(digits) <= 19 and luhn_ok(digits):
            # A fingerprint is kept as sent (an identifier): a card number must not be.
            return ("params.card_fingerprint: this is a card number; send your payment "
                    "provider's card token or a keyed hash of the number, never the number")
    return None


def contact_time_ms(value: int | float | str) -> float:
    """A support_contact time in epoch milliseconds; ValueError with the reason."""
    if isinstance(value, bool):
        raise ValueError("expected an RFC 3339 timestamp or epoch milliseconds")
    if isinstance(value, int | float):
        if not 0 <= value <= 253_402_300_799_000:  # up to 9999-12-31
            raise ValueError(f"{value!r} is not epoch milliseconds")
        return float(value)
    try:
        parsed = datetime.fromisoformat(value.upper())
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp nor epoch "
                         "milliseconds") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone offset (RFC 3339 needs one, e.g. Z)")
    return parsed.timestamp() * 1000


def _check_contact(known: KnownParams) -> str | None:
    """support_contact's rules: the channel's value, readable times, answered and
    abandoned exclusive, neither before queued_at."""
    if known.channel is not None and known.channel not in CONTACT_CHANNELS:
        return (f"params.channel: {known.channel!r} is not one of "
                f"{', '.join(sorted(CONTACT_CHANNELS))}")
    times: dict[str, float] = {}
    for name in ("queued_at", "answered_at", "abandoned_at"):
        value = getattr(known, name)
        if value is not None:
            try:
                times[name] = contact_time_ms(value)
            except ValueError as exc:
                return f"params.{name}: {exc}"
    if "answered_at" in times and "abandoned_at" in times:
        return ("params.abandoned_at: a contact is either answered or abandoned, not both "
                "(send answered_at or abandoned_at)")
    queued = times.get("queued_at")
    for name in ("answered_at", "abandoned_at"):
        if queued is not None and name in times and times[name] < queued:
            return f"params.{name}: precedes queued_at"
    return None


# Memos of values already found valid (names and countries repeat endlessly); the
# pipeline's fast path tests membership instead of running the regex.
VALID_NAMES: Final[set[str]] = set()
VALID_COUNTRIES: Final[set[str]] = set()


def check_event(event: Event) -> str | None:
    """What the decoder's types leave to Python: name, country, the fields only
    Shopwatch sets; ``None`` when valid."""
    if event.net_prefix is not None:
        return "net_prefix: set by Shopwatch from ip; send ip instead"
    if event.net_hash is not None:
        return "net_hash: set by Shopwatch from ip; send ip instead"
    name = event.name
    if name not in VALID_NAMES:
        if not NAME_RE.fullmatch(name):
            return (f"name: {name!r} must start with a letter and hold only letters, "
                    "digits and _")
        if len(VALID_NAMES) < 10_000:
            VALID_NAMES.add(name)
    device = event.device
    if device is not None and device.country is not None:
        country = device.country
        if not COUNTRY_RE.fullmatch(country):
            return f"device.country: {country!r} is not an upper-case ISO 3166-1 code like DE"
        VALID_COUNTRIES.add(country)  # at most 26 * 26
    return None
