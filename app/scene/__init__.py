"""Scene 09's words: the listings, the staff engineer's answers and the captions.

Pure data and pure functions of a :class:`ClusterView`, so the screen's text
is computed from the real state and can be tested without a UI.
"""

from app.scene.captions import caption, configuration_line
from app.scene.listings import LISTINGS, Listing, highlighted, listings_for, live_keys

TITLE = "Scene 09 · The L4 pinning trap: balance requests, not connections"
#: The app's default seed: with four pods the L4 balancer's first picks are pod #3, as in the scene.
SCENE_SEED = 5

__all__ = [
    "LISTINGS",
    "SCENE_SEED",
    "TITLE",
    "Listing",
    "caption",
    "configuration_line",
    "highlighted",
    "listings_for",
    "live_keys",
]
