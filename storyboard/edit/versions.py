"""The stitcher's versions, in the key of the film and of every part it stitches.

Apart from the stitcher so that a build with nothing to stitch keys its film (edit.film.film_key)
without importing the stitcher's modules (≈ 20 ms of building their classes).
"""

CONFORM_VERSION = 1
"""Bump when the conform or window commands change in a way the settings below do not show."""

TITLES_VERSION = 1
"""Bump when a title card or overlay is drawn differently in a way its key does not show."""

CLIP_FACTS_VERSION = 1
"""Bump when what ``clip_facts.read_clip`` finds in a clip changes (its fields, how one is read), so
facts memoised by an older stitcher are read again (``facts_memo``)."""
