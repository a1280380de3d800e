"""Video: colorize clips, keep their colours steady, and measure how steady they are.

* ``container``: clip files in and out through PyAV, one frame at a time
  (``is_video``, ``probe``, ``read_frames``, ``clip_writer``, ``write_clip``).
* ``colorize``: frames or a clip file through a colorizer (``colorize_frames``,
  ``colorize_clip``), with a temporal mode from ``temporal``: ``none``
  (frame by frame), ``ema`` or ``flow`` (optical flow, ``flow``).
* ``evaluate``: colour clips made gray, colorized the three ways, scored
  (PSNR, colourfulness, CDC, warp error) into a table and a per-frame plot.
* ``synthetic``: clips whose motion is known and a colorizer that flickers,
  for tests and demonstrations.
"""

from colorkit.video.colorize import colorize_clip, colorize_frames
from colorkit.video.container import probe, read_frames, write_clip, is_video
from colorkit.video.evaluate import evaluate_clip, evaluate_clips, evaluate_frames
from colorkit.video.temporal import TEMPORAL_MODES

__all__ = ["TEMPORAL_MODES", "colorize_clip", "colorize_frames", "evaluate_clip", "evaluate_clips", "evaluate_frames",
           "is_video", "probe", "read_frames", "write_clip"]
