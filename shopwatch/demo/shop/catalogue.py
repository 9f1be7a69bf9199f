"""The demo shop's catalogue: 24 products in four categories, and their images.

The catalogue is fixed data (the same in every run, whatever the seed), so a product id
seen in one demo means the same product in the next. Product images are SVG drawn by
:func:`product_svg` from the product itself; nothing is loaded from outside.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Final

from shopwatch.demo.shop.money import to_amount


@dataclass(frozen=True)
class Category:
    """A shelf of the shop: ``slug`` is its URL part (``/c/{slug}``)."""

    slug: str
    name: str
    blurb: str
    hue: int  # base colour of its product images (HSL hue, degrees)


@dataclass(frozen=True)
class Product:
    """One product; ``id`` is its URL part and ``category`` its category's slug.

    ``cents`` is the price in cents, VAT included; :attr:`price` is the same in currency
    units, as events and the simulator's history use it.
    """

    id: str
    name: str
    category: str
    cents: int
    description: str

    @property
    def price(self) -> float:
        return to_amount(self.cents)


CATEGORIES: Final = (
    Category("coffee", "Coffee", "Single origins and blends, roasted weekly.", 25),
    Category("tea", "Tea", "Green, black and herbal teas from small gardens.", 95),
    Category("brewing-gear", "Brewing gear", "Kettles, drippers, presses and grinders.", 205),
    Category("accessories", "Accessories", "Filters, scales, mugs and storage.", 330),
)
_BY_SLUG: Final = {c.slug: c for c in CATEGORIES}

# id, name, category slug, price in cents, description
_PRODUCTS: Final = (
    ("yirgacheffe", "Ethiopia Yirgacheffe, 250 g", "coffee", 1290,
     "Washed heirloom beans with notes of jasmine, bergamot and lemon."),
    ("huila", "Colombia Huila, 250 g", "coffee", 1150,
     "Balanced and sweet: red apple, caramel and milk chocolate."),
    ("cerrado", "Brazil Cerrado, 1 kg", "coffee", 2990,
     "Nutty, low-acid everyday coffee for filter and espresso."),
    ("espresso-blend", "Espresso Blend No. 7, 500 g", "coffee", 1690,
     "Dark chocolate and hazelnut; thick crema in a home machine."),
    ("decaf-swiss-water", "Decaf Swiss Water, 250 g", "coffee", 1250,
     "Decaffeinated without solvents; cocoa and brown sugar."),
    ("kenya-aa", "Kenya AA, 250 g", "coffee", 1490,
     "Bright and juicy: blackcurrant, grapefruit and cane sugar."),
    ("sencha-uji", "Sencha Uji, 100 g", "tea", 990,
     "Steamed Japanese green tea, grassy with a long umami finish."),
    ("darjeeling-ff", "Darjeeling First Flush, 100 g", "tea", 1350,
     "Spring harvest from the Himalaya foothills, floral and light."),
    ("assam-breakfast", "Assam Breakfast, 250 g", "tea", 890,
     "Malty, strong black tea that takes milk well."),
    ("earl-grey", "Earl Grey Blue Flower, 100 g", "tea", 790,
     "Ceylon black tea with bergamot oil and cornflower petals."),
    ("jasmine-pearls", "Jasmine Pearls, 50 g", "tea", 1190,
     "Hand-rolled green tea scented with fresh jasmine blossoms."),
    ("rooibos-vanilla", "Rooibos Vanilla, 100 g", "tea", 650,
     "Caffeine-free red bush tea with Bourbon vanilla."),
    ("pour-over-dripper", "Ceramic Pour-over Dripper", "brewing-gear", 2400,
     "Cone dripper for one or two cups; fits size 02 filters."),
    ("gooseneck-kettle", "Gooseneck Kettle, 1 l", "brewing-gear", 5900,
     "Stainless steel kettle with a precise spout for pour-over."),
    ("french-press", "French Press, 1 l", "brewing-gear", 3490,
     "Borosilicate glass and a double steel mesh filter."),
    ("hand-grinder", "Hand Grinder", "brewing-gear", 7900,
     "Conical steel burrs, 40 click settings from espresso to press."),
    ("moka-pot", "Moka Pot, 6 cups", "brewing-gear", 3990,
     "Aluminium stovetop espresso maker, the Italian classic."),
    ("cold-brew-bottle", "Cold Brew Bottle", "brewing-gear", 2750,
     "One litre of cold brew overnight, with a removable filter."),
    ("paper-filters", "Paper Filters, 100 pcs", "accessories", 590,
     "Unbleached size 02 filters for cone drippers."),
    ("digital-scale", "Digital Scale with Timer", "accessories", 3200,
     "Weighs to 0.1 g and times the brew at once."),
    ("ceramic-mug", "Ceramic Mug, 300 ml", "accessories", 1400,
     "Hand-glazed stoneware, dishwasher safe."),
    ("tea-infuser", "Tea Infuser Basket", "accessories", 850,
     "Fine stainless mesh basket for loose-leaf tea in a mug or pot."),
    ("milk-frother", "Milk Frother", "accessories", 2290,
     "Battery hand frother for lattes and matcha."),
    ("airtight-canister", "Airtight Canister, 500 g", "accessories", 1990,
     "Keeps beans and leaves fresh with a one-way valve."),
)
PRODUCTS: Final = tuple(
    Product(pid, name, slug, cents, text) for pid, name, slug, cents, text in _PRODUCTS
)
_BY_ID: Final = {p.id: p for p in PRODUCTS}


def category(slug: str) -> Category | None:
    """The category with this slug, or ``None``."""
    return _BY_SLUG.get(slug)


def product(product_id: str) -> Product | None:
    """The product with this id, or ``None``."""
    return _BY_ID.get(product_id)


def in_category(cat: Category) -> list[Product]:
    """The category's products, in catalogue order."""
    return [p for p in PRODUCTS if p.category == cat.slug]


def featured() -> list[Product]:
    """The home page's selection: the first two products of each category."""
    return [p for c in CATEGORIES for p in in_category(c)[:2]]


def search(query: str) -> list[Product]:
    """Products whose name, description or category holds every word of ``query``.

    Case-insensitive, in catalogue order; an empty or blank query finds nothing (the
    page then shows the search form only).
    """
    words = query.lower().split()
    if not words:
        return []
    found = []
    for p in PRODUCTS:
        text = f"{p.name} {p.description} {_BY_SLUG[p.category].name}".lower()
        if all(w in text for w in words):
            found.append(p)
    return found


def product_svg(p: Product) -> str:
    """A 400 x 400 SVG picture of ``p``: a tinted card, a category icon and the name.

    Drawn from the product alone, so an image is the same on every request and in every
    run (a CDN may cache it). The name is XML-escaped.
    """
    index = PRODUCTS.index(p)
    hue = (_BY_SLUG[p.category].hue + 11 * (index % 6)) % 360
    icon = _ICONS[p.category]
    name = escape(p.name.split(",")[0])
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 400" width="400" '
        f'height="400" role="img" aria-label="{name}">'
        f'<rect width="400" height="400" rx="24" fill="hsl({hue} 45% 92%)"/>'
        f'<g fill="hsl({hue} 40% 38%)" stroke="hsl({hue} 40% 25%)" stroke-width="4">{icon}</g>'
        '<text x="200" y="352" text-anchor="middle" font-family="sans-serif" font-size="22" '
        f'fill="hsl({hue} 35% 22%)">{name}</text></svg>'
    )


_ICONS: Final = {
    # a coffee bag with a bean on it
    "coffee": ('<path d="M130 90 h140 l15 200 h-170 z"/>'
               '<ellipse cx="200" cy="190" rx="28" ry="40" fill="hsl(30 30% 85%)"/>'
               '<path d="M200 152 q-12 38 0 76" fill="none"/>'),
    # a leaf
    "tea": ('<path d="M110 260 C110 140 220 80 300 90 C300 190 240 270 110 260 z"/>'
            '<path d="M120 250 L270 120" fill="none" stroke="hsl(95 40% 85%)"/>'),
    # a kettle: body, spout and handle
    "brewing-gear": ('<path d="M130 270 h150 l-15 -110 h-120 z"/>'
                     '<path d="M280 230 l55 -70" fill="none" stroke-width="12"/>'
                     '<path d="M150 160 q55 -80 110 0" fill="none" stroke-width="10"/>'),
    # a mug
    "accessories": ('<rect x="120" y="120" width="130" height="160" rx="14"/>'
                    '<path d="M250 160 q60 0 60 40 q0 40 -60 40" fill="none" '
                    'stroke-width="14"/>'),
}
