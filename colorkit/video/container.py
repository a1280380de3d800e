"""Clip files in and out, one frame at a time, through PyAV (FFmpeg's libraries in a wheel).

Reading: ``probe`` checks a file once, demuxing its packets without decoding
them, and says what it holds (size, frame count, frame rate, audio); it turns
every problem it can see before any work starts into one ``ColorkitError``
line: not a clip, corrupt or truncated, no frames, a codec FFmpeg cannot
decode, frames over the pixel limit. ``read_frames`` then decodes the frames
one by one, so memory does not grow with the clip's length.

Writing: ``clip_writer`` encodes frames one by one into the input's container
with the input's codec where colorkit has an encoder for it (the container's
usual codec otherwise), copies the audio packets unchanged, and gives every
frame the timestamp its input frame had. A clip with a variable frame rate
therefore keeps its timing: nothing is dropped or duplicated. The file is
written under a temporary name and renamed when complete, so a failure never
leaves a half-written clip, and the input is never the output.
"""

from __future__ import annotations

import contextlib
import itertools
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

from colorkit import color
from colorkit.errors import ColorkitError
from colorkit.io import atomic_path

#: containers colorkit reads and writes (a GIF counts as a clip when it has more than one frame)
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".gif")
#: frames larger than full HD are refused: the network, the optical flow and
#: the gamut fit all scale with the pixel count (1088: codecs pad 1080 to it)
MAX_FRAME_PIXELS = 1920 * 1088
#: the encoder for each decoded codec colorkit can write back as it was
ENCODERS = {"h264": "libx264", "vp9": "libvpx-vp9", "vp8": "libvpx", "mpeg4": "mpeg4", "mjpeg": "mjpeg",
            "gif": "gif"}
#: a container's usual video codec, for inputs whose own codec colorkit cannot encode
DEFAULT_ENCODERS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".avi": "mpeg4",
                    ".webm": "libvpx-vp9", ".gif": "gif"}
#: quality settings: visually lossless H.264 (CRF 18), VP9/VP8 at constant quality,
#: MPEG-4 part 2 and Motion JPEG at a fixed quantiser of 2 (their finest useful one)
ENCODER_OPTIONS = {"libx264": {"crf": "18", "preset": "medium"},
                   "libvpx-vp9": {"crf": "24", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"},
                   "libvpx": {"crf": "8", "b": "4M"}}
FIXED_QUANTISER = {"mpeg4": 2, "mjpeg": 2}
#: MPEG-4 part 2 stores the time base in 16 bits: a finer one (an MP4's 1/90000) takes H.264 instead
MPEG4_LARGEST_TIME_BASE = 2**16 - 1
#: a frame count or duration in a header may exceed what the packets hold by
#: this much without the file being truncated (an encoder's empty delay packet,
#: rounding of the last frame's duration)
TRUNCATION_SLACK_FRAMES = 1
GIF_TRAILER = b"\x3b"


class ClipInfo(NamedTuple):
    """What ``probe`` found in a clip."""

    path: Path
    width: int
    height: int
    frames: int  # video packets: the frame count, found by reading the file once
    rate: Fraction  # average frames per second
    time_base: Fraction  # the unit of the frames' timestamps
    codec: str  # the video decoder's name
    audio_streams: int


def is_video(path) -> bool:
    """Whether ``path`` names a clip: a video container suffix, or a GIF with
    more than one frame (a still GIF is an image)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        return False
    if suffix != ".gif":
        return True
    from PIL import Image

    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) > 1
    except (OSError, ValueError):
        return False


def _open_input(path: Path):
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as error:
        raise ColorkitError(f"{path} cannot be read as a clip (corrupt, truncated or not a video): "
                            f"{_ffmpeg_reason(error)}") from error


def _ffmpeg_reason(error: Exception) -> str:
    """FFmpeg's own words, without the file name it repeats."""
    return getattr(error, "strerror", None) or str(error)


class _PacketScan(NamedTuple):
    video_packets: int
    end_seconds: float  # the latest time any packet of any stream reaches


def _scan_packets(container, video) -> _PacketScan:
    """Count the video packets and find where the data ends, without decoding."""
    count, end = 0, 0.0
    try:
        for packet in container.demux():
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None:
                continue
            end = max(end, float((stamp + (packet.duration or 0)) * packet.time_base))
            count += packet.stream.index == video.index
    except av.error.FFmpegError as error:
        raise ColorkitError(f"{container.name} is corrupt: {_ffmpeg_reason(error)}") from error
    return _PacketScan(count, end)


def _check_complete(path: Path, container, video, scan: _PacketScan, rate: Fraction) -> None:
    """Refuse a file whose header promises more than its packets hold."""
    promised = video.frames
    if promised and scan.video_packets < promised - TRUNCATION_SLACK_FRAMES:
        raise ColorkitError(f"{path} is truncated: its header announces {promised} frames, the file holds "
                            f"{scan.video_packets}")
    if container.duration:
        duration = container.duration / av.time_base
        slack = TRUNCATION_SLACK_FRAMES / float(rate) if rate else 0.0
        if scan.end_seconds < duration - slack - 1e-3:
            raise ColorkitError(f"{path} is truncated: its header announces {duration:.2f} s, the data ends "
                                f"at {scan.end_seconds:.2f} s")
    if path.suffix.lower() == ".gif" and not _ends_with(path, GIF_TRAILER):
        raise ColorkitError(f"{path} is truncated: a GIF file ends with a trailer byte, this one does not")


def _ends_with(path: Path, tail: bytes) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-len(tail), 2)
        return handle.read() == tail


def probe(path, max_pixels: int = MAX_FRAME_PIXELS) -> ClipInfo:
    """Check the clip at ``path`` and describe it; any problem is one ``ColorkitError``."""
    path = Path(path)
    if not path.is_file():
        raise ColorkitError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ColorkitError(f"{path} is not a clip colorkit reads: use one of {', '.join(VIDEO_SUFFIXES)}")
    with _open_input(path) as container:
        if not container.streams.video:
            raise ColorkitError(f"{path} has no video stream")
        video = container.streams.video[0]
        if video.codec_context is None:
            raise ColorkitError(f"{path}: its video codec is not one FFmpeg can decode (unsupported codec)")
        width, height = video.codec_context.width, video.codec_context.height
        if width * height > max_pixels:
            raise ColorkitError(f"{path} has {width}x{height} frames ({width * height:,} pixels), over the limit of "
                                f"{max_pixels:,} pixels a frame: downscale it first")
        rate = video.average_rate or video.guessed_rate or Fraction(0)
        info = ClipInfo(path, width, height, 0, Fraction(rate), Fraction(video.time_base),
                        video.codec_context.name, len(container.streams.audio))
        scan = _scan_packets(container, video)
        if scan.video_packets == 0 or not width or not height:
            raise ColorkitError(f"{path} has no video frames")
        _check_complete(path, container, video, scan, info.rate)
    return info._replace(frames=scan.video_packets)


def read_timed_frames(path):
    """Yield ``(timestamp, rgb)`` for each frame of the clip, in order: the
    timestamp in the video stream's ``time_base`` (None if the file has none),
    ``rgb`` a uint8 array ``[H, W, 3]``. One frame is decoded at a time."""
    path = Path(path)
    count = 0
    with _open_input(path) as container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        try:
            for frame in container.decode(video):
                count += 1
                yield frame.pts, frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as error:
            raise ColorkitError(f"{path} is corrupt after frame {count}: {_ffmpeg_reason(error)}") from error
    if count == 0:
        raise ColorkitError(f"{path} has no frames that can be decoded")


def read_frames(path):
    """Yield the clip's frames as uint8 RGB arrays ``[H, W, 3]``, one at a time."""
    for _, rgb in read_timed_frames(path):
        yield rgb


# --- Writing ----------------------------------------------------------------------------------------------


def encoder_for(info: ClipInfo, suffix: str) -> str:
    """The input's own codec where colorkit can encode it, else the container's usual one."""
    if suffix == ".gif":
        return "gif"
    encoder = ENCODERS.get(info.codec, DEFAULT_ENCODERS[suffix])
    if encoder == "mpeg4" and info.time_base.denominator > MPEG4_LARGEST_TIME_BASE:
        return "libx264"
    return encoder


def pixel_format(encoder: str, width: int, height: int) -> str:
    """4:2:0 chroma, which every player shows, except where H.264 cannot use it:
    at an odd width or height x264 needs full-resolution chroma (4:4:4)."""
    if encoder == "gif":
        return "pal8"
    if encoder == "mjpeg":
        return "yuvj420p"
    if encoder == "libx264" and (width % 2 or height % 2):
        return "yuv444p"
    return "yuv420p"


def gif_frame(rgb: np.ndarray) -> av.VideoFrame:
    """A palette frame for GIF: Pillow picks each frame's own 256 colours. No
    dithering: a dither pattern that changes from frame to frame would flicker."""
    from PIL import Image

    quantized = Image.fromarray(rgb).quantize(256, dither=Image.Dither.NONE)
    palette = np.zeros((256, 3), np.uint8)
    colours = np.asarray(quantized.getpalette(), np.uint8)[: 256 * 3].reshape(-1, 3)
    palette[: len(colours)] = colours
    argb = np.concatenate([np.full((256, 1), 255, np.uint8), palette], axis=1)
    return av.VideoFrame.from_ndarray((np.asarray(quantized), argb), format="pal8")


@contextlib.contextmanager
def clip_writer(target, info: ClipInfo, new: bool = False):
    """A ``ClipWriter`` encoding into ``target`` like the clip ``info`` describes
    (its container, size, frame rate and time base; its audio copied). The
    clip is written under a temporary name and renamed onto ``target`` when the
    block ends without an error; after an error nothing is left. ``new``:
    ``info`` describes a clip being made, not an input that must not be overwritten."""
    target = Path(target)
    suffix = target.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ColorkitError(f"cannot write a clip to {target}: use one of {', '.join(VIDEO_SUFFIXES)}")
    if not new and target.exists() and target.resolve() == info.path.resolve():
        raise ColorkitError(f"{target} is the input clip; write the output somewhere else")
    with atomic_path(target) as temporary, av.open(str(temporary), "w") as output:
        audio = _AudioCopy(info.path, output) if info.audio_streams else None
        try:
            writer = ClipWriter(output, target, info, encoder_for(info, suffix), audio)
            yield writer
            writer.finish()
        finally:
            if audio is not None:
                audio.close()


class ClipWriter:
    """Encodes frames into an open output (made by ``clip_writer``):
    ``write(rgb, timestamp)`` takes uint8 RGB ``[H, W, 3]`` and the input
    frame's timestamp (in ``info.time_base``), and muxes the audio that plays
    before it."""

    def __init__(self, output, target: Path, info: ClipInfo, encoder: str, audio=None):
        self.target, self.info, self.encoder = target, info, encoder
        self.written, self._last_stamp = 0, None
        self._output, self._audio = output, audio
        self._video = output.add_stream(encoder, rate=info.rate or 25)
        self._video.width, self._video.height = info.width, info.height
        self._video.pix_fmt = pixel_format(encoder, info.width, info.height)
        self._video.codec_context.time_base = self._video.time_base = info.time_base
        self._video.options = dict(ENCODER_OPTIONS.get(encoder, {}))
        if encoder in FIXED_QUANTISER:
            self._video.codec_context.qscale = True
            self._video.codec_context.global_quality = FIXED_QUANTISER[encoder] * 118  # FFmpeg's FF_QP2LAMBDA

    def _next_stamp(self, timestamp) -> int:
        """The input's timestamp; where it is missing or does not increase, one
        nominal frame after the previous one."""
        step = max(1, round(1 / (self.info.rate * self.info.time_base))) if self.info.rate else 1
        if self._last_stamp is not None and (timestamp is None or timestamp <= self._last_stamp):
            timestamp = self._last_stamp + step
        self._last_stamp = 0 if timestamp is None else timestamp
        return self._last_stamp

    def write(self, rgb: np.ndarray, timestamp=None) -> None:
        rgb = np.ascontiguousarray(rgb, np.uint8)
        if rgb.shape != (self.info.height, self.info.width, 3):
            raise ColorkitError(f"frame {self.written} is {rgb.shape}; {self.target} takes "
                                f"[{self.info.height}, {self.info.width}, 3]")
        frame = gif_frame(rgb) if self.encoder == "gif" else av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = self._next_stamp(timestamp), self.info.time_base
        self._encode(frame)
        self.written += 1

    def _encode(self, frame) -> None:
        """Encode ``frame`` (None: flush the encoder) and mux its packets after
        the audio that plays before them."""
        try:
            for packet in self._video.encode(frame):
                if self._audio is not None and packet.pts is not None:
                    self._audio.copy_until(float(packet.pts * packet.time_base))
                self._output.mux(packet)
        except av.error.FFmpegError as error:
            raise ColorkitError(f"cannot encode {self.target} with {self.encoder}: {_ffmpeg_reason(error)}") from error

    def finish(self) -> None:
        """The frames the encoder still holds, then the rest of the audio."""
        self._encode(None)
        if self._audio is not None:
            self._audio.copy_until(float("inf"))


class _AudioCopy:
    """The audio packets of a source clip, muxed into an output unchanged, in
    time order, no further ahead than the video written so far (so the muxer
    never has to hold a long run of one stream in memory)."""

    def __init__(self, source: Path, output):
        self._input, self._output = _open_input(source), output
        streams = self._input.streams.audio
        self._streams = {stream.index: output.add_stream_from_template(stream) for stream in streams}
        self._packets = self._input.demux(*streams)
        self._pending = None

    def copy_until(self, seconds: float) -> None:
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            if packet.dts is None:  # demux ends each stream with an empty flushing packet
                continue
            if float(packet.dts * packet.time_base) > seconds:
                self._pending = packet
                return
            packet.stream = self._streams[packet.stream.index]
            self._output.mux(packet)

    def close(self) -> None:
        self._input.close()


def write_clip(frames, target, fps=25) -> Path:
    """Write RGB frames (uint8, or float in [0, 1]; all of one size) as a new
    clip at a constant ``fps`` (an int or a Fraction), with the container's
    usual codec; return ``target``. For making clips (tests, examples)."""
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ColorkitError(f"there are no frames to write to {target}")
    first = np.asarray(first)
    rate = Fraction(fps)
    info = ClipInfo(Path(target), first.shape[1], first.shape[0], 0, rate, 1 / rate, "", 0)
    with clip_writer(target, info, new=True) as writer:
        for frame in itertools.chain([first], frames):
            frame = np.asarray(frame)
            writer.write(frame if frame.dtype == np.uint8 else color.to_8bit(frame), writer.written)
    return Path(target)
