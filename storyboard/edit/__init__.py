"""The edit: how built clips become the film.

``rules`` checks ``[edit]`` at load (``sources`` reads its sound and subtitle files, ``xfade_names``
lists its transitions); ``timeline`` resolves it into pieces, joins and sound; ``conform``, ``film_setting``,
``transition`` and ``stitch`` make the picture incrementally; ``soundtrack`` encodes the sound;
``film`` keys, caches and places the result.
"""
