"""The edit: how built clips become the film.

``timeline`` resolves ``[edit]`` into pieces, joins and sound; ``conform``, ``film_setting``,
``transition`` and ``stitch`` make the picture incrementally; ``soundtrack`` encodes the sound;
``film`` keys, caches and places the result.
"""
