"""colorkit.video: clips in and out, L kept, flicker reduced, scene cuts, bad input, evaluation, the CLI."""

import fractions
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from colorkit import cli, color, metrics
from colorkit.errors import ColorkitError
from colorkit.video import colorize as video_colorize
from colorkit.video import container, evaluate, flow, synthetic, temporal

#: the frame size of most test clips (height, width), which is also the flickering model's working size
SIZE = (48, 64)


@pytest.fixture(scope="module")
def flickering():
    return synthetic.flickering_colorizer()


@pytest.fixture(scope="module")
def pan():
    return synthetic.pan_zoom_clip(frames=12, size=SIZE)


def lightness(rgb):
    return color.rgb_to_lab(np.asarray(rgb, np.float32) / (255.0 if np.asarray(rgb).dtype == np.uint8 else 1.0))[..., 0]


def video_timestamps(path):
    with av.open(str(path)) as clip:
        return [frame.pts for frame in clip.decode(video=0)]


def audio_packets(path):
    with av.open(str(path)) as clip:
        stream = clip.streams.audio[0]
        return stream.codec_context.name, [(packet.pts, bytes(packet)) for packet in clip.demux(stream) if packet.dts]


def clip_with_audio(path, frames, stamps=None, audio_codec="aac", time_base=fractions.Fraction(1, 1000)):
    """A clip with a sine tone longer than the picture; ``stamps``: each frame's
    timestamp in milliseconds (default 10 frames a second)."""
    video_codec = "libvpx-vp9" if str(path).endswith(".webm") else "libx264"
    with av.open(str(path), "w") as out:
        video = out.add_stream(video_codec, rate=10)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video.codec_context.time_base = video.time_base = time_base
        audio = out.add_stream(audio_codec, rate=48000)
        audio.layout = "mono"
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = (stamps[index] if stamps else 100 * index), time_base
            out.mux(video.encode(frame))
        samples = 960
        for block in range(int((len(frames) / 10 + 0.3) * 48000 / samples)):
            tone = 0.2 * np.sin(0.05 * (np.arange(samples) + block * samples)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            frame.sample_rate, frame.pts = 48000, block * samples
            out.mux(audio.encode(frame))
        out.mux(video.encode())
        out.mux(audio.encode())
    return Path(path)


# --- Clips in and out --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", container.VIDEO_SUFFIXES)
def test_a_clip_comes_out_with_its_frame_count_rate_size_codec_and_l(flickering, pan, tmp_path, suffix):
    source = container.write_clip(pan.frames, tmp_path / f"in{suffix}", fps=10)
    target = video_colorize.colorize_clip(flickering, source, tmp_path / "out" / f"in{suffix}", size=SIZE)
    before, after = container.probe(source), container.probe(target)
    assert (after.frames, after.rate, after.width, after.height) == (len(pan.frames), before.rate, 64, 48)
    assert after.codec == before.codec
    assert video_timestamps(target) == video_timestamps(source)
    decoded_in = np.stack(list(container.read_frames(source)))
    decoded_out = np.stack(list(container.read_frames(target)))
    # the codecs are lossy, the L of the output is still the L of the input up to their error
    assert np.abs(lightness(decoded_out) - lightness(decoded_in)).mean() < 2.5
    assert metrics.colorfulness(decoded_out).mean() > 20  # colorized, not gray
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"in{suffix}"]  # no temporary left


def test_a_vp8_webm_stays_vp8(flickering, pan, tmp_path):
    source = tmp_path / "old.webm"
    with av.open(str(source), "w") as out:
        video = out.add_stream("libvpx", rate=10)
        video.width, video.height, video.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
        for rgb in pan.frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(video.encode())
    target = video_colorize.colorize_clip(flickering, source, tmp_path / "out" / "old.webm", size=SIZE)
    assert (container.probe(source).codec, container.probe(target).codec) == ("vp8", "vp8")
    assert container.probe(target).frames == len(pan.frames)


def test_a_codec_that_cannot_take_the_clips_time_base_gives_way_to_h264(flickering, pan, tmp_path):
    source = tmp_path / "camera.mp4"  # MPEG-4 part 2 in an MP4 with the usual 1/90000 time base
    with av.open(str(source), "w") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
        video.time_base = fractions.Fraction(1, 90000)
        for index, rgb in enumerate(pan.frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode())
    target = video_colorize.colorize_clip(flickering, source, tmp_path / "out" / "camera.mp4", size=SIZE)
    assert (container.probe(source).codec, container.probe(target).codec) == ("mpeg4", "h264")
    assert video_timestamps(target) == video_timestamps(source)


@pytest.mark.parametrize("suffix, codec", [(".mp4", "aac"), (".webm", "libopus")])
def test_audio_is_copied_packet_for_packet(flickering, tmp_path, suffix, codec):
    frames = synthetic.moving_object_clip(frames=8, size=SIZE).frames
    source = clip_with_audio(tmp_path / f"talk{suffix}", frames, audio_codec=codec)
    target = video_colorize.colorize_clip(flickering, source, tmp_path / "out" / source.name, size=SIZE)
    assert container.probe(target).audio_streams == 1
    assert audio_packets(target) == audio_packets(source)
    assert video_timestamps(target) == video_timestamps(source)


def test_a_variable_frame_rate_keeps_every_frame_at_its_time(flickering, tmp_path):
    frames = synthetic.pan_zoom_clip(frames=8, size=SIZE).frames
    stamps = [0, 100, 150, 400, 420, 900, 1000, 1300]  # milliseconds, irregular
    source = clip_with_audio(tmp_path / "vfr.mp4", frames, stamps)
    target = video_colorize.colorize_clip(flickering, source, tmp_path / "out" / "vfr.mp4", size=SIZE)
    with av.open(str(source)) as clip:
        seconds = [float(frame.pts * frame.time_base) for frame in clip.decode(video=0)]
    assert seconds == pytest.approx([stamp / 1000 for stamp in stamps])
    assert video_timestamps(target) == video_timestamps(source)


def test_frames_are_streamed_a_batch_at_a_time(flickering):
    pulled = []

    def frames():
        for index, rgb in enumerate(synthetic.pan_zoom_clip(frames=10, size=SIZE).frames):
            pulled.append(index)
            yield rgb

    outputs = video_colorize.colorize_frames(flickering, frames(), "flow", SIZE, batch_size=3)
    next(outputs)
    assert len(pulled) == 3  # one batch read before the first frame comes out, not the whole clip
    assert len(list(outputs)) == 9 and len(pulled) == 10


def test_is_video_knows_clips_from_images(tmp_path, pan):
    from PIL import Image

    still, moving = tmp_path / "still.gif", tmp_path / "moving.gif"
    Image.fromarray(pan.frames[0]).save(still)
    container.write_clip(pan.frames[:3], moving, fps=10)
    assert container.is_video(tmp_path / "a.mp4") and container.is_video(tmp_path / "b.WEBM")
    assert container.is_video(moving) and not container.is_video(still)
    assert not container.is_video(tmp_path / "a.png") and not container.is_video(tmp_path / "a.flv")


# --- Bad input: one line, nothing written ------------------------------------------------------------------


def truncated(source: Path, target: Path, share: float = 0.6) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * share)])
    return target


def zero_frame_clip(path: Path) -> Path:
    """A Matroska file with a video stream that holds no frame (and some audio)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("libopus", rate=48000)
        audio.layout = "mono"
        for block in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="flt", layout="mono")
            frame.sample_rate, frame.pts = 48000, block * 960
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    return path


def unknown_codec_clip(source: Path, target: Path) -> Path:
    """An AVI whose video FourCC names no codec (MPEG-4's FMP4 replaced)."""
    target.write_bytes(source.read_bytes().replace(b"FMP4", b"QQQQ"))
    return target


def bad_clips(folder: Path, frames) -> dict:
    made = {suffix: container.write_clip(frames, folder / f"good{suffix}", fps=10)
            for suffix in (".mp4", ".webm", ".avi", ".gif", ".mkv")}
    (folder / "text.mp4").write_text("not a clip")
    return {
        "truncated mp4": (truncated(made[".mp4"], folder / "cut.mp4"), "cannot be read as a clip"),
        "truncated webm": (truncated(made[".webm"], folder / "cut.webm"), "is truncated"),
        "truncated avi": (truncated(made[".avi"], folder / "cut.avi"), "is truncated"),
        "truncated gif": (truncated(made[".gif"], folder / "cut.gif"), "is truncated"),
        "truncated mkv": (truncated(made[".mkv"], folder / "cut.mkv"), "is truncated"),
        "not a clip": (folder / "text.mp4", "cannot be read as a clip"),
        "zero frames": (zero_frame_clip(folder / "empty.mkv"), "has no video frames"),
        "unknown codec": (unknown_codec_clip(made[".avi"], folder / "odd.avi"), "unsupported codec"),
        "missing": (folder / "absent.mp4", "does not exist"),
    }


def test_bad_clips_fail_in_one_line_and_write_nothing(flickering, tmp_path):
    clips = bad_clips(tmp_path, synthetic.pan_zoom_clip(frames=10, size=SIZE).frames)
    for name, (path, expected) in clips.items():
        with pytest.raises(ColorkitError) as caught:
            video_colorize.colorize_clip(flickering, path, tmp_path / "out" / path.name, size=SIZE)
        message = str(caught.value)
        assert expected in message and "\n" not in message and str(path) in message, (name, message)
    assert not (tmp_path / "out").exists()


def test_a_4k_clip_is_over_the_pixel_limit(flickering, tmp_path):
    big = container.write_clip(np.zeros((2, 2160, 3840, 3), np.uint8), tmp_path / "big.avi", fps=10)
    with pytest.raises(ColorkitError, match=r"3840x2160 frames \(8,294,400 pixels\), over the limit"):
        video_colorize.colorize_clip(flickering, big, tmp_path / "out" / "big.avi")
    assert not (tmp_path / "out").exists()


def test_the_input_is_never_overwritten(flickering, pan, tmp_path):
    source = container.write_clip(pan.frames, tmp_path / "in.mp4", fps=10)
    before = source.read_bytes()
    with pytest.raises(ColorkitError, match="is the input clip"):
        video_colorize.colorize_clip(flickering, source, source, size=SIZE)
    with pytest.raises(ColorkitError, match="must keep the clip's own format"):
        video_colorize.colorize_clip(flickering, source, tmp_path / "in.webm", size=SIZE)
    assert source.read_bytes() == before


def test_a_failure_half_way_leaves_no_partial_clip(flickering, pan, tmp_path, monkeypatch):
    source = container.write_clip(pan.frames, tmp_path / "in.mp4", fps=10)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "in.mp4").write_bytes(b"the previous output")
    real_step = temporal.FlowPropagation.blend

    def fail_at_frame_6(self, *args):
        if self._frame == 6:
            raise ColorkitError("simulated failure")
        return real_step(self, *args)

    monkeypatch.setattr(temporal.FlowPropagation, "blend", fail_at_frame_6)
    with pytest.raises(ColorkitError, match="simulated failure"):
        video_colorize.colorize_clip(flickering, source, tmp_path / "out" / "in.mp4", size=SIZE, batch_size=2)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["in.mp4"]  # no temporary left
    assert (tmp_path / "out" / "in.mp4").read_bytes() == b"the previous output"


# --- Colorizing: L kept, temporal modes, scene cuts --------------------------------------------------------


@pytest.mark.parametrize("mode", temporal.TEMPORAL_MODES)
def test_every_frame_keeps_its_l_exactly(flickering, pan, mode):
    frames = list(video_colorize.colorize_frames(flickering, pan.frames, mode, SIZE, batch_size=4))
    assert len(frames) == len(pan.frames)
    outputs = np.stack(frames)
    assert outputs.shape == pan.frames.shape and outputs.dtype == np.float32
    assert np.abs(lightness(outputs) - lightness(pan.frames)).max() < 0.01


def test_the_moving_average_mixes_each_prediction_with_the_last_output():
    stabilizer = temporal.MovingAverage(weight=0.25)
    lightness_map = np.full((4, 4), 50.0)
    first, second, third = (np.full((4, 4, 2), value, np.float32) for value in (0.4, 0.0, 0.8))
    np.testing.assert_allclose(stabilizer.step(lightness_map, first), 0.4)
    np.testing.assert_allclose(stabilizer.step(lightness_map, second), 0.75 * 0.4)  # 0.3
    np.testing.assert_allclose(stabilizer.step(lightness_map, third), 0.25 * 0.8 + 0.75 * 0.3)  # 0.425


def test_flow_carries_the_previous_colours_along_the_motion(rng):
    texture = np.kron(rng.random((12, 16)), np.ones((4, 4))) * 80 + 10  # 48 x 64 blocks of L
    moved = np.roll(texture, 3, axis=1)  # the picture moves 3 pixels right
    colours = np.stack([texture / 100, -texture / 100], axis=-1).astype(np.float32)  # ab tied to the texture
    stabilizer = temporal.FlowPropagation(weight=0.25)
    stabilizer.step(texture, colours)
    output = stabilizer.step(moved, np.zeros_like(colours))  # the network now predicts gray
    expected = 0.75 * np.roll(colours, 3, axis=1)  # three quarters of the old colours, moved with the picture
    interior = (slice(8, -8), slice(12, -8))
    assert np.abs(output[interior] - expected[interior]).mean() < 0.01


def test_a_scene_cut_resets_the_state_so_no_colour_bleeds_across(flickering):
    first = synthetic.pan_zoom_clip(frames=6, size=SIZE, photo="astronaut").frames
    second = synthetic.pan_zoom_clip(frames=6, size=SIZE, photo="coffee").frames
    frames = synthetic.with_cut(first, second)
    reference = np.stack(list(video_colorize.colorize_frames(flickering, frames, "none", SIZE)))
    for mode in ("ema", "flow"):
        stabilizer = temporal.make_stabilizer(mode)
        outputs = np.stack(list(video_colorize.colorize_frames(flickering, frames, stabilizer, SIZE)))
        assert stabilizer.cuts == [len(first)], mode
        np.testing.assert_allclose(outputs[len(first)], reference[len(first)], atol=1e-5)  # fresh start at the cut
        assert np.abs(outputs[len(first) + 1] - reference[len(first) + 1]).max() > 0.01  # smoothing resumes


@pytest.mark.parametrize("make", [synthetic.pan_zoom_clip, synthetic.moving_object_clip])
def test_no_cut_is_seen_inside_a_shot_with_motion(make):
    clip = make(frames=16, size=SIZE)
    stabilizer = temporal.make_stabilizer("ema")
    for frame in clip.frames:
        stabilizer.step(lightness(frame), np.zeros(SIZE + (2,), np.float32))
    assert stabilizer.cuts == []


def test_unknown_modes_and_settings_are_refused():
    with pytest.raises(ColorkitError, match="--temporal must be one of none, ema, flow"):
        temporal.make_stabilizer("median")
    with pytest.raises(ColorkitError, match=r"in \(0, 1\]"):
        temporal.make_stabilizer("flow", weight=0.0)


def test_the_synthetic_clips_true_motion_explains_their_frames():
    for clip in (synthetic.pan_zoom_clip(frames=6, size=SIZE), synthetic.moving_object_clip(frames=6, size=SIZE)):
        frames = clip.frames.astype(np.float32)
        for t in range(1, len(frames)):
            valid = clip.valid[t - 1]
            moved = flow.warp(frames[t - 1], clip.flows[t - 1])
            left_behind = np.abs(frames[t - 1] - frames[t])[valid].mean()
            assert left_behind > 5.0  # there is motion...
            assert np.abs(moved - frames[t])[valid].mean() < 0.3 * left_behind  # ...and the true flow follows it
        assert 0.8 < clip.valid.mean() < 1.0  # some pixels leave the frame or are uncovered


# --- Evaluation: the target ----------------------------------------------------------------------------


def check_flow_target(rows, clip):
    by_method = {row["method"]: row for row in rows if row["clip"] == clip}
    assert by_method["flow"]["warp_error_vs_none"] <= 0.7, by_method  # at least 30% less warping error
    assert by_method["flow"]["psnr_vs_none_db"] >= -0.3, by_method  # for at most 0.3 dB of PSNR
    assert by_method["gray"]["warp_error"] < by_method["flow"]["warp_error"]  # the floor a gray clip sets


def test_flow_cuts_warp_error_by_30_percent_for_at_most_0_3_db_on_known_motion(flickering, tmp_path):
    clips = [("pan", synthetic.pan_zoom_clip(frames=16, size=SIZE)),
             ("object", synthetic.moving_object_clip(frames=16, size=SIZE))]
    rows = evaluate.evaluate_clips(flickering, clips, tmp_path, size=SIZE)
    for name, _ in clips:
        check_flow_target(rows, name)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary["method"]) == list(evaluate.METHODS) * 2
    assert {"psnr_db", "colorfulness", "cdc", "warp_error"} <= set(summary.columns)
    frames = pd.read_csv(tmp_path / "pan_frames.csv")
    assert len(frames) == 16 * len(evaluate.METHODS) and frames["warp_error"].isna().sum() == len(evaluate.METHODS)
    assert (tmp_path / "summary.md").read_text().startswith("| clip | method |")
    assert (tmp_path / "object_per_frame.png").stat().st_size > 10_000


def test_evaluating_a_clip_file_estimates_the_motion_and_meets_the_target_too(flickering, tmp_path):
    source = container.write_clip(synthetic.moving_object_clip(frames=16, size=SIZE).frames, tmp_path / "ball.mkv",
                                  fps=10)
    rows = evaluate.evaluate_clip(flickering, source, tmp_path / "eval", size=SIZE)
    check_flow_target(rows, "ball")
    assert (tmp_path / "eval" / "ball_per_frame.png").exists()


def test_a_gray_source_has_no_psnr_but_its_flicker_is_measured(flickering, pan):
    gray = np.round(color.rgb_to_gray(pan.frames / 255.0) * 255).astype(np.uint8)
    frame_rows, summary = evaluate.evaluate_frames(flickering, gray, ("none", "flow"), SIZE)
    assert all(np.isnan(row["psnr_db"]) for row in frame_rows)
    assert all(row["warp_error"] > 0 for row in summary) and all(row["colorfulness"] > 10 for row in summary)


# --- The command line ------------------------------------------------------------------------------------------


def test_colorize_takes_clips_and_images_together(colour_run, pan, tmp_path, capsys):
    from PIL import Image

    clip = container.write_clip(pan.frames, tmp_path / "in" / "walk.webm", fps=10)
    photo = tmp_path / "in" / "still.png"
    Image.fromarray(pan.frames[0]).save(photo)
    code = cli.main(["colorize", str(clip), str(photo), "--run", str(colour_run), "-o", str(tmp_path / "out"),
                     "--temporal", "ema", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0 and captured.err == "", captured.err
    assert "colorized 2 of 2 inputs" in captured.out
    assert container.probe(tmp_path / "out" / "walk.webm").frames == len(pan.frames)
    assert (tmp_path / "out" / "still.png").exists()


def test_a_bad_clip_is_one_error_line_and_the_others_go_on(colour_run, pan, tmp_path, capsys):
    good = container.write_clip(pan.frames, tmp_path / "good.mp4", fps=10)
    bad = truncated(container.write_clip(pan.frames, tmp_path / "whole.webm", fps=10), tmp_path / "bad.webm")
    code = cli.main(["colorize", str(bad), str(good), "--run", str(colour_run), "-o", str(tmp_path / "out"), "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"error: {bad} is truncated")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.mp4"]


def test_clips_refuse_image_only_options(colour_run, pan, tmp_path, capsys):
    clip = container.write_clip(pan.frames, tmp_path / "in.mp4", fps=10)
    code = cli.main(["colorize", str(clip), "--run", str(colour_run), "-o", str(tmp_path / "out"), "--compare"])
    assert code == 2 and "apply to images, not to clips" in capsys.readouterr().err


def test_evaluate_video_writes_the_table_and_plots(colour_run, tmp_path, capsys):
    clip = container.write_clip(synthetic.moving_object_clip(frames=8, size=SIZE).frames, tmp_path / "ball.mp4", fps=10)
    code = cli.main(["evaluate", "--video", str(clip), "--model", str(colour_run / "checkpoints" / "best.keras"),
                     "--out", str(tmp_path / "eval")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "| ball | flow |" in captured.out
    assert {p.name for p in (tmp_path / "eval").iterdir()} == {
        "summary.csv", "summary.md", "ball_frames.csv", "ball_frames.md", "ball_per_frame.png"}


def test_evaluate_on_images_needs_a_run_or_data_for_a_model(colour_run, capsys):
    code = cli.main(["evaluate", "--model", str(colour_run / "checkpoints" / "best.keras")])
    assert code == 2 and "--data DIR and --out DIR" in capsys.readouterr().err
