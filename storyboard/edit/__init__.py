"""The edit: how built clips become the film.

``rules`` checks ``[edit]`` at load (``sources`` reads its sound and subtitle files, ``xfade_names``
lists its transitions); ``timeline`` resolves it into pieces, joins and sound; ``stitch`` makes the film incrementally:
``pieces`` cuts each piece into parts, ``render`` memoises them (``conform`` and ``clip_facts`` for
clips, ``titles`` for cards and text, ``transition`` for windows, ``film_setting`` for the H.264
setting they share); ``mix`` lays music and voice-over on the sound and ``soundtrack`` encodes it;
``film`` keys, caches and places the result.
"""
