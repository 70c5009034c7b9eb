"""make_report(): one HTML page per board, a contact sheet of every shot and the film.

By job: `cards` gathers what the page shows (each shot, each cut scored, the film), `frames`
measures and shrinks pictures, `page` lays it all out as HTML and writes it.

The page is self-contained except for the videos: each shot's first and last frames are
embedded as small JPEG data: URIs, while the film and each shot's clip are linked by paths
relative to the page (a film is tens of megabytes; as base64 it would be a third bigger
still, held in memory by the browser and unseekable until fully parsed). The default page
sits beside the film; the clips are the cache's own objects (`.storyboard/objects/...`),
so the page plays them where the board is built, or served from the board's folder.

The shots of the film are numbered in film order, each with the time it starts in the film
(transitions overlap the clips); shots not in the film follow, unnumbered.

At every cut of the film's sequence, the outgoing clip's last frame and the incoming clip's
first frame (the lossless PNGs in the cache) are compared:

    PSNR  over RGB, in dB; infinite when the pixels are identical
    SSIM  over luma, downsampled as Wang et al. do for frames this size, 7x7 uniform window

Only an intended hand-off is judged: where the incoming shot starts on the outgoing shot's
last frame (`continues`, or `first_frame = { shot = ..., frame = "last" }`) and the join
scores below PSNR_FLAG or SSIM_FLAG, it is flagged as a "bad join". A cut between unrelated
shots is what an edit is made of: its scores are shown, never flagged.
"""

from storyboard.report.cards import PSNR_FLAG, SSIM_FLAG, STATUS, Cut, FilmCard, ShotCard, locate_in_film
from storyboard.report.frames import THUMB_WIDTH, compare_frames, thumbnail
from storyboard.report.page import default_report_path, make_report

__all__ = ["PSNR_FLAG", "SSIM_FLAG", "STATUS", "THUMB_WIDTH", "Cut", "FilmCard", "ShotCard", "compare_frames",
           "default_report_path", "locate_in_film", "make_report", "thumbnail"]
