"""The ``spikegen`` command line.

Every command has ``--help``. Bad input ends with a one-line reason on stderr and a non-zero
exit code (2 for bad input, 1 for anything unexpected); existing outputs are never
overwritten unless ``--overwrite`` is given.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from spikegen.defaults import DEFAULT_GAIN
from spikegen.errors import OutputExistsError, SpikeGenError

app = typer.Typer(
    name="spikegen",
    help="Spike-camera toolkit and SpikeGen: read, simulate, reconstruct, deblur, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("spikegen")
        except PackageNotFoundError:  # running from a source tree that is not installed
            v = "unknown (not installed)"
        from spikegen.spikes import native

        typer.echo(f"spikegen {v} (spike kernels: {native.status})")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Spike-camera toolkit and SpikeGen: read, simulate, reconstruct, deblur, evaluate."""


# Options shared by every command that reads a PKU .dat file.
Height = Annotated[Optional[int], typer.Option("--height", help="Frame height of a .dat file (default: 250); checked against an .npz.")]
Width = Annotated[Optional[int], typer.Option("--width", help="Frame width of a .dat file (default: 400); checked against an .npz.")]
RawWidth = Annotated[Optional[int], typer.Option("--raw-width", help="Stored row width when the camera writes extra columns (e.g. 416); they are dropped.")]
NoFlip = Annotated[bool, typer.Option("--no-flip", help="Do not flip rows (the stored .dat frame is upside down by default).")]
Partial = Annotated[bool, typer.Option("--drop-partial", help="Read only the whole frames of a .dat whose size is not a whole number of frames.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
# Frame ranges with units (spikegen.spikes.io.frame_range): frames, or times at the file's fps.
Start = Annotated[Optional[str], typer.Option("--start", help="First frame: a frame index (200) or a time (10ms, 0.5s; rounded down to a frame) at the file's fps. (default: 0)")]
End = Annotated[Optional[str], typer.Option("--end", help="Stop before this frame: an index or a time (rounded up; end exclusive). (default: the end of the file)")]
FpsCamera = Annotated[Optional[float], typer.Option("--fps-camera", help="Frame rate of the spike stream in Hz, for --start/--end times (default: the .npz metadata's fps, else 20000, the Vidar cameras).")]
CfaOpt = Annotated[Optional[str], typer.Option("--cfa", help="Bayer pattern of a colour spike stream, upright: RGGB, BGGR, GRBG or GBRG.")]


def _dat_kwargs(height: Optional[int], width: Optional[int], raw_width: Optional[int], no_flip: bool,
                drop_partial: bool = False) -> dict:
    return {"height": height, "width": width, "raw_width": raw_width, "flip": False if no_flip else None,
            "partial": "drop" if drop_partial else "error"}


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit integer


def _echo_spikes_written(output: Path, n: int, h: int, w: int, rate: float) -> None:
    """What ``simulate`` and ``convert`` print after writing a spike file."""
    typer.echo(f"wrote {output}: {n} frames of {h}x{w}, mean firing rate {rate:.4f}")
    if output.suffix.lower() == ".dat" and (h, w) != (250, 400):
        typer.echo(f"note: a .dat file has no header; read it back with --height {h} --width {w}")


def _need(flag: str, value, *, lo=None, hi=None, above=None) -> None:
    """Validate a numeric option at the CLI boundary: finite, ``>= lo`` (or ``> above``),
    ``<= hi``; ``None`` (an unset optional) passes. Raises a one-line :class:`SpikeGenError`
    naming the flag."""
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise SpikeGenError(f"{flag} must be a finite number, got {value}")
    def f(x) -> str:
        return f"{x:g}" if isinstance(x, float) else str(x)

    if above is not None and not value > above:
        raise SpikeGenError(f"{flag} must be > {f(above)}, got {f(value)}")
    if lo is not None and value < lo:
        raise SpikeGenError(f"{flag} must be >= {f(lo)}, got {f(value)}")
    if hi is not None and value > hi:
        raise SpikeGenError(f"{flag} must be <= {f(hi)}, got {f(value)}")


def _need_seed(seed: int) -> None:
    _need("--seed", seed, lo=0, hi=SEED_MAX)


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="A spike file: .dat (PKU) or .npz.")],
    height: Height = None,
    width: Width = None,
    raw_width: RawWidth = None,
    no_flip: NoFlip = False,
    drop_partial: Partial = False,
    fps: Annotated[Optional[float], typer.Option("--fps", "--fps-camera", help="Frame rate of the stream in Hz (default: the .npz metadata's fps, else 20000, the Vidar cameras).")] = None,
    start: Start = None,
    end: End = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (numbers, not text).")] = False,
) -> None:
    """Frames, size, duration, fps, mean firing rate and a per-frame rate summary of a spike file."""
    from spikegen.tasks.toolkit import spike_file_report, spike_file_summary

    _need("--fps", fps, above=0)

    kw = dict(fps=fps, start=start, end=end, names=("--start", "--end"),
              **_dat_kwargs(height, width, raw_width, no_flip, drop_partial))
    if json_out:
        import json

        typer.echo(json.dumps(spike_file_report(file, **kw), indent=2))
        return
    summary = spike_file_summary(file, **kw)
    for key, value in summary.items():
        typer.echo(f"{key:>18}: {value}")


@app.command()
def simulate(
    input: Annotated[Path, typer.Argument(help="An image, a folder of frames, or a video file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.dat or OUT.npz.")],
    method: Annotated[str, typer.Option(help="'if' (integrate-and-fire) or 'photon' (photon sampling).")] = "if",
    vth: Annotated[float, typer.Option("--vth", help="Firing threshold V_th.")] = 1.0,
    gain: Annotated[float, typer.Option(help=f"Intensity gain: a white pixel adds `gain` per step (default: {DEFAULT_GAIN}, as the shipped weights were trained).")] = DEFAULT_GAIN,
    frames: Annotated[int, typer.Option(help="Spike frames for a still image (method if/photon).")] = 200,
    interp: Annotated[int, typer.Option(help="Temporal up-sampling of video frames by linear interpolation.")] = 1,
    coverage: Annotated[float, typer.Option(help="Photon sampling: fraction of pixels drawn per frame.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    cfa: Annotated[Optional[str], typer.Option("--cfa", help="Simulate a Bayer colour sensor (RGGB, BGGR, GRBG or GBRG, of the upright frames) from the colour input; recorded in an .npz (a .dat cannot store it).")] = None,
    fps_camera: Annotated[Optional[float], typer.Option("--fps-camera", help="Frame rate of the simulated camera in Hz, recorded in an .npz. (default: 20000)")] = None,
    no_flip: NoFlip = False,
    overwrite: Overwrite = False,
) -> None:
    """Simulate a spike stream from an image, a frame folder or a video."""
    from spikegen.tasks.toolkit import simulate_file

    _need("--vth", vth, above=0)
    _need("--gain", gain, above=0)
    _need("--frames", frames, lo=1)
    _need("--interp", interp, lo=1)
    _need("--coverage", coverage, above=0, hi=1)
    _need_seed(seed)
    _need("--fps-camera", fps_camera, above=0)

    n, h, w, rate = simulate_file(
        input, output, method=method, v_th=vth, gain=gain, frames=frames, interp=interp,
        coverage=coverage, seed=seed, flip=not no_flip, overwrite=overwrite, cfa=cfa, fps=fps_camera,
        warn=lambda m: _echo(f"warning: {m}"),
    )
    _echo_spikes_written(output, n, h, w, rate)


@app.command()
def convert(
    file: Annotated[Path, typer.Argument(help="A spike file: .dat, .npz or .npy.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.dat (PKU format, no header) or OUT.npz (packed, with metadata).")],
    crop: Annotated[Optional[str], typer.Option(help="Keep TOP,LEFT,HEIGHT,WIDTH of the upright frames (pixels); a Bayer pattern in the metadata moves with it.")] = None,
    compress: Annotated[bool, typer.Option("--compress", help="Deflate an .npz output (smaller for sparse streams; read whole instead of by frame range).")] = False,
    start: Start = None,
    end: End = None,
    fps_camera: FpsCamera = None,
    height: Height = None,
    width: Width = None,
    raw_width: RawWidth = None,
    no_flip: NoFlip = False,
    drop_partial: Partial = False,
    overwrite: Overwrite = False,
) -> None:
    """Convert a spike file between .dat and packed .npz, optionally cut (--start/--end) and cropped; streamed, bounded memory."""
    from spikegen.tasks.toolkit import convert_file

    _need("--fps-camera", fps_camera, above=0)
    n, h, w, rate = convert_file(
        file, output, start=start, end=end, fps_camera=fps_camera, crop=crop, compress=compress,
        overwrite=overwrite, warn=lambda m: _echo(f"warning: {m}"),
        **_dat_kwargs(height, width, raw_width, no_flip, drop_partial),
    )
    _echo_spikes_written(output, n, h, w, rate)


@app.command()
def reconstruct(
    file: Annotated[Path, typer.Argument(help="A spike file: .dat or .npz.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.png (one frame), OUT.mp4 or a folder of PNGs (with --all).")],
    method: Annotated[str, typer.Option(help="tfp, tfi, blend (the classic per-pixel inverse-variance blend of TFP and TFI, no weights) or spikegen (TFP & Spike, needs weights).")] = "tfp",
    window: Annotated[Optional[int], typer.Option(help="Window length in frames (TFP, TFI search range, the frames the blend and SpikeGen use; weights that name a tfp_window average that many of them, more on sparse streams). [default: 41; blend and spikegen weights with a tfp_window: 61]")] = None,
    frame: Annotated[Optional[int], typer.Option(help="Reconstruct the frame at this index (default: the middle frame).")] = None,
    all_frames: Annotated[bool, typer.Option("--all", help="Reconstruct every frame, streaming over the file.")] = False,
    stride: Annotated[int, typer.Option(help="With --all: one output frame every `stride` input frames.")] = 1,
    vth: Annotated[float, typer.Option("--vth", help="TFI: threshold V_th (the image is V_th / interval, one frame or --all).")] = 1.0,
    scale: Annotated[Optional[str], typer.Option(help="TFP, the blend (and SpikeGen's TFP pseudo-frame): multiply the firing rate by this (default 1; for spikegen the model's tfp_scale, 1/0.6; 1/0.6 for Spk2ImgNet-style data). 'auto' (tfp, tfi, blend): the 99.5th percentile of the frame (with --all: of the middle frame, fixed for all) maps to white; the gain is printed.")] = None,
    fps: Annotated[float, typer.Option(help="Frame rate of an MP4 output.")] = 30.0,
    weights: Annotated[Optional[Path], typer.Option(help="SpikeGen weights folder (default: the shipped tiny weights).")] = None,
    start: Start = None,
    end: End = None,
    fps_camera: FpsCamera = None,
    cfa: Annotated[Optional[str], typer.Option("--cfa", help="Bayer pattern (RGGB, BGGR, GRBG, GBRG; upright) for colour TFP/TFI, or none for gray. (default: the .npz metadata's cfa, else gray)")] = None,
    height: Height = None,
    width: Width = None,
    raw_width: RawWidth = None,
    no_flip: NoFlip = False,
    drop_partial: Partial = False,
    overwrite: Overwrite = False,
) -> None:
    """Reconstruct images from a spike stream (TFP, TFI, their blend or SpikeGen); --start/--end select frames or times."""
    from spikegen.tasks.reconstruct import reconstruct_file

    _need("--window", window, lo=1)
    _need("--frame", frame, lo=0)
    _need("--stride", stride, lo=1)
    _need("--vth", vth, above=0)
    _need("--fps", fps, above=0)
    _need("--fps-camera", fps_camera, above=0)

    info: dict = {}
    written = reconstruct_file(
        file, output, method=method, window=window, frame=frame, all_frames=all_frames, stride=stride,
        v_th=vth, scale=scale, fps=fps, weights=weights, overwrite=overwrite,
        start=start, end=end, fps_camera=fps_camera, cfa=cfa, info=info,
        **_dat_kwargs(height, width, raw_width, no_flip, drop_partial),
    )
    if scale is not None and scale.strip().lower() == "auto":
        typer.echo(f"auto scale: {info['scale']:.4g} (pass --scale {info['scale']:.4g} to reuse it)")
    typer.echo(f"wrote {written}")


@app.command()
def blur(
    image: Annotated[Path, typer.Argument(help="A sharp image.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The blurred image.")],
    kernels: Annotated[int, typer.Option(help="Number of motion kernels averaged.")] = 8,
    size: Annotated[int, typer.Option(help="Kernel size in pixels.")] = 40,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Overwrite = False,
) -> None:
    """Motion-blur an image with the pretraining kernel bank (8 random 40x40 line kernels, +-30 degrees; docs/simulation.md)."""
    from spikegen.tasks.toolkit import blur_file

    _need("--kernels", kernels, lo=1)
    _need("--size", size, lo=1)
    _need_seed(seed)

    blur_file(image, output, kernels=kernels, size=size, seed=seed, overwrite=overwrite)
    typer.echo(f"wrote {output}")


@app.command()
def deblur(
    rgb: Annotated[Path, typer.Option("--rgb", help="The blurry input: an image, a video file or a folder of frames.")],
    spikes: Annotated[Path, typer.Option("--spikes", help="Spike file over its exposure (.dat, .npz, .npy); for a video it covers all frames.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.png for an image; OUT.mp4 or a folder of PNGs for a video.")],
    gamma: Annotated[float, typer.Option(help="Modality ratio: 0 = RGB only, 1 = spikes only.")] = 0.5,
    samples: Annotated[int, typer.Option(help="Samples K; K > 1 also writes OUT_mean and OUT_std (uncertainty: 2 x std).")] = 1,
    steps: Annotated[Optional[int], typer.Option(help="Diffusion steps (default: the model's; 25 for tiny).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the sampler.")] = 0,
    temperature: Annotated[Optional[float], typer.Option(help="Sampling temperature, 0 = deterministic (default: the weights' stored sample_temperature).")] = None,
    colour: Annotated[str, typer.Option("--colour", help="input: SpikeGen's luminance with the blurry input's chroma (full colour); model: the model's own, gamma-faded colours. (default: input)")] = "input",
    tile: Annotated[int, typer.Option(help="Images with a side above this many pixels are restored in overlapping tiles, one sample at a time (bounded memory); 0 = whole image at once. (default: 512)")] = 512,
    frames: Annotated[Optional[int], typer.Option(help="Use the centred N spike frames of each exposure (default: the model's expected count, else all).")] = None,
    resize_spikes: Annotated[bool, typer.Option("--resize-spikes", help="Resize spikes of another size to the RGB size (nearest neighbour).")] = False,
    tfp: Annotated[bool, typer.Option("--tfp", help="Also write OUT_tfp: the classic TFP of the same spikes (rate x V_th / gain).")] = False,
    vth: Annotated[float, typer.Option("--vth", help="The sensor's threshold V_th (for --tfp).")] = 1.0,
    gain: Annotated[Optional[float], typer.Option(help=f"The sensor's gain (for --tfp) (default: {DEFAULT_GAIN}).")] = None,
    fps: Annotated[Optional[float], typer.Option(help="Frame rate of an MP4 output (default: 30).")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="SpikeGen weights folder (default: the shipped tiny weights).")] = None,
    height: Annotated[Optional[int], typer.Option("--height", help="Frame height of a .dat spike file (default: the RGB height).")] = None,
    width: Annotated[Optional[int], typer.Option("--width", help="Frame width of a .dat spike file (default: the RGB width).")] = None,
    raw_width: RawWidth = None,
    no_flip: NoFlip = False,
    drop_partial: Partial = False,
    start: Annotated[Optional[str], typer.Option("--start", help="First spike frame used: an index or a time (10ms, 0.5s; rounded down) at the spike file's fps. (default: 0)")] = None,
    end: Annotated[Optional[str], typer.Option("--end", help="Stop before this spike frame: an index or a time (rounded up; exclusive). (default: the end)")] = None,
    fps_camera: FpsCamera = None,
    overwrite: Overwrite = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Deblur an image or a video with SpikeGen, guided by its spike stream (or the part --start/--end select)."""
    from spikegen.tasks.deblur import deblur_file

    _need("--gamma", gamma, lo=0, hi=1)
    _need("--samples", samples, lo=1)
    _need("--steps", steps, lo=1)
    _need_seed(seed)
    _need("--temperature", temperature, lo=0)
    _need("--tile", tile, lo=0)
    _need("--frames", frames, lo=1)
    _need("--vth", vth, above=0)
    _need("--gain", gain, above=0)
    _need("--fps", fps, above=0)
    _need("--fps-camera", fps_camera, above=0)

    written = deblur_file(
        rgb, spikes, output, weights=weights, gamma=gamma, samples=samples, steps=steps, seed=seed,
        temperature=temperature, colour=colour, tile=tile or None, frames=frames, resize_spikes=resize_spikes, tfp=tfp, v_th=vth, gain=gain, fps=fps,
        overwrite=overwrite, progress=not no_progress, start=start, end=end, fps_camera=fps_camera,
        **_dat_kwargs(height, width, raw_width, no_flip, drop_partial),
    )
    typer.echo("wrote " + ", ".join(str(p) for p in written))


# --- spikegen eval: the evaluation protocols (docs/evaluation.md); the logic is in spikegen.tasks.evaluate ---
# One sub-command per task, each with only its own options (typer refuses another task's option).
eval_app = typer.Typer(help="Evaluate methods by the paper's protocols; writes tables and an HTML report.",
                       epilog="Each task has only its own options (spikegen eval TASK --help). deblur: --vth (default: 1,2,4), "
                              "--size (default: 256); reconstruct and real: --window (default: 61).",
                       no_args_is_help=True)
app.add_typer(eval_app, name="eval")
EvalOutput = Annotated[Path, typer.Option("-o", "--output", help="Output folder: results.json/.csv/.md, report.html, images/.")]
EvalMethods = Annotated[Optional[str], typer.Option(help="Comma-separated: blurry (deblur), tfp, tfi, blend (reconstruct/real: the TFP/TFI inverse-variance blend), spikegen-G (G in [0,1]); spikegen = TFP & Spike for reconstruct/real (default: all of the task's).")]
EvalLimit = Annotated[Optional[int], typer.Option(help="Evaluate only the first N items (sorted).")]
EvalWeights = Annotated[Optional[Path], typer.Option(help="SpikeGen weights folder (default: the shipped weights; SpikeGen rows are skipped with a warning when there are none).")]
EvalSteps = Annotated[Optional[int], typer.Option(help="Diffusion steps (default: the model's; 25 for tiny).")]
EvalSeed = Annotated[int, typer.Option(help="Base random seed (per-image seeds derive from it).")]
EvalRateScale = Annotated[Optional[float], typer.Option("--rate-scale", help="Firing rate -> intensity for TFP/TFI (default: 1/0.6 for reconstruct; real: stretch to the 99.5th percentile).")]
EvalWindow = Annotated[Optional[int], typer.Option(help="Spike frames per reconstruction (default: 61).")]
EvalSpikegenFrames = Annotated[Optional[int], typer.Option("--spikegen-frames", help="SpikeGen gets the centred N frames of the window (default: the model's expected count, else all).")]
EvalReportImages = Annotated[int, typer.Option("--report-images", help="Items shown with pictures in report.html.")]
EvalNoProgress = Annotated[bool, typer.Option("--no-progress", help="No progress bar.")]
EvalJson = Annotated[bool, typer.Option("--json", help="Print results.json's content as one JSON document on stdout (messages go to stderr).")]


def _run_eval_cli(task: str, data: Path, output: Path, common: dict, opt: dict, json_out: bool) -> None:
    """Check the shared options, run ``spikegen.tasks.evaluate.run_eval`` and print the summary (or ``--json``)."""
    from spikegen.tasks.evaluate import run_eval

    for flag, key, kw in (("--limit", "limit", dict(lo=1)), ("--steps", "steps", dict(lo=1)),
                          ("--report-images", "report_images", dict(lo=0))):
        _need(flag, common[key], **kw)
    for flag, key, kw in (("--size", "size", dict(lo=16)), ("--gain", "gain", dict(above=0)), ("--frames", "frames", dict(lo=1)),
                          ("--n-blur", "n_blur", dict(lo=1)), ("--interp", "interp", dict(lo=1)),
                          ("--rate-scale", "rate_scale", dict(above=0)), ("--window", "window", dict(lo=1)),
                          ("--spikegen-frames", "spikegen_frames", dict(lo=1)), ("--centers", "centers", dict(lo=1)),
                          ("--height", "height", dict(lo=1)), ("--width", "width", dict(lo=1))):
        if key in opt:
            _need(flag, opt[key], **kw)
    _need_seed(common["seed"])
    common = dict(common, progress=not common.pop("no_progress"), warn=lambda m: _echo(f"warning: {m}"))
    opt = {k: v for k, v in opt.items() if v is not None}
    if json_out:
        import contextlib
        import json

        with contextlib.redirect_stdout(sys.stderr):  # stray prints must not corrupt the document
            result = run_eval(task, data, output, **common, **opt)
        _echo(f"wrote {Path(output) / 'results.json'}, results.csv, results.md; open {Path(output) / 'report.html'}")
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    result = run_eval(task, data, output, **common, **opt)
    from spikegen.report import markdown_table
    from spikegen.tasks.evaluate import display_rows

    typer.echo(markdown_table(display_rows(result["summary"]), digits=4), nl=False)
    typer.echo(f"wrote {Path(output) / 'results.json'}, results.csv, results.md; open {Path(output) / 'report.html'}")


@eval_app.command("deblur")
def eval_deblur(
    data: Annotated[Path, typer.Option("--data", help="An image folder (or a video folder / video files with --source video).")],
    output: EvalOutput,
    methods: EvalMethods = None,
    vth: Annotated[Optional[str], typer.Option("--vth", help="Spike thresholds V_th, comma-separated (default: 1,2,4).")] = None,
    size: Annotated[Optional[int], typer.Option(help="Centre-crop size (default: 256).")] = None,
    limit: EvalLimit = None,
    weights: EvalWeights = None,
    steps: EvalSteps = None,
    seed: EvalSeed = 0,
    gain: Annotated[Optional[float], typer.Option(help=f"Integrate-and-fire gain (default: {DEFAULT_GAIN}, the protocol's; the deblurring weights were trained on 0.15-1.0).")] = None,
    frames: Annotated[Optional[int], typer.Option(help="Spike frames per sample (default: 8).")] = None,
    source: Annotated[Optional[str], typer.Option(help="images, video or auto (default: auto = video when the folder holds video files).")] = None,
    n_blur: Annotated[Optional[int], typer.Option("--n-blur", help="--source video: frames averaged per blurry frame, odd (default: 7).")] = None,
    interp: Annotated[Optional[int], typer.Option(help="--source video: linear frame interpolation factor (default: 1).")] = None,
    colour: Annotated[Optional[str], typer.Option("--colour", help="SpikeGen rows in colour input (luminance from SpikeGen, chroma from the blurry input) or model (its own, gamma-faded colours) (default: input).")] = None,
    report_images: EvalReportImages = 3,
    overwrite: Overwrite = False,
    no_progress: EvalNoProgress = False,
    json_out: EvalJson = False,
) -> None:
    """GOPRO-style conditional deblurring of an image (or video) folder."""
    _run_eval_cli("deblur", data, output,
                  dict(methods=methods, limit=limit, weights=weights, steps=steps, seed=seed, report_images=report_images,
                       overwrite=overwrite, no_progress=no_progress),
                  dict(v_ths=vth, size=size, gain=gain, frames=frames, source=source, n_blur=n_blur, interp=interp,
                       colour=colour), json_out)


@eval_app.command("reconstruct")
def eval_reconstruct(
    data: Annotated[Path, typer.Option("--data", help="A folder with spike/*.dat + gt/*.png (Spk2ImgNet layout).")],
    output: EvalOutput,
    methods: EvalMethods = None,
    size: Annotated[Optional[int], typer.Option(help="Optional centre crop (default: the full frame).")] = None,
    limit: EvalLimit = None,
    weights: EvalWeights = None,
    steps: EvalSteps = None,
    seed: EvalSeed = 0,
    rate_scale: EvalRateScale = None,
    window: EvalWindow = None,
    spikegen_frames: EvalSpikegenFrames = None,
    report_images: EvalReportImages = 3,
    overwrite: Overwrite = False,
    no_progress: EvalNoProgress = False,
    json_out: EvalJson = False,
) -> None:
    """STIR-style dense frame reconstruction against ground truth."""
    _run_eval_cli("reconstruct", data, output,
                  dict(methods=methods, limit=limit, weights=weights, steps=steps, seed=seed, report_images=report_images,
                       overwrite=overwrite, no_progress=no_progress),
                  dict(size=size, rate_scale=rate_scale, window=window, spikegen_frames=spikegen_frames), json_out)


@eval_app.command("real")
def eval_real(
    data: Annotated[Path, typer.Option("--data", help="A folder of spike files (.dat / .npz / .npy, searched recursively) or one file.")],
    output: EvalOutput,
    methods: EvalMethods = None,
    limit: EvalLimit = None,
    weights: EvalWeights = None,
    steps: EvalSteps = None,
    seed: EvalSeed = 0,
    rate_scale: EvalRateScale = None,
    window: EvalWindow = None,
    spikegen_frames: EvalSpikegenFrames = None,
    centers: Annotated[Optional[int], typer.Option(help="Reconstructions per file, evenly spaced (default: 3).")] = None,
    height: Annotated[Optional[int], typer.Option("--height", help="Frame height of .dat files (default: 250).")] = None,
    width: Annotated[Optional[int], typer.Option("--width", help="Frame width of .dat files (default: 400).")] = None,
    report_images: EvalReportImages = 3,
    overwrite: Overwrite = False,
    no_progress: EvalNoProgress = False,
    json_out: EvalJson = False,
) -> None:
    """No-reference scores (NIQE, BRISQUE) of reconstructions of real captures."""
    _run_eval_cli("real", data, output,
                  dict(methods=methods, limit=limit, weights=weights, steps=steps, seed=seed, report_images=report_images,
                       overwrite=overwrite, no_progress=no_progress),
                  dict(rate_scale=rate_scale, window=window, spikegen_frames=spikegen_frames, centers=centers,
                       height=height, width=width), json_out)


@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder (relative to the current directory).")] = Path("outputs/demo"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the demo's files in a non-empty output folder (other files are left alone).")] = False,
) -> None:
    """The whole job on embedded defaults; writes an HTML report you can open."""
    from spikegen.tasks.demo import run_demo

    _need_seed(seed)

    index = run_demo(output, seed=seed, overwrite=overwrite)
    typer.echo(f"open {index}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    stage: Annotated[str, typer.Argument(help="vae, pretrain or finetune.")],
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="A YAML config (configs/*.yaml).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue exactly from the run's latest checkpoint.")] = False,
    resume_from: Annotated[Optional[Path], typer.Option("--resume-from", help="Continue from this checkpoint or run folder.")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar (logs still go to log.csv).")] = False,
    export: Annotated[Optional[Path], typer.Option("--export", help="With --resume/--resume-from: write that checkpoint's (EMA) weights to this folder and stop, without training.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start afresh in a log.dir that holds a run (its checkpoints and log are deleted); with --export: replace the export folder.")] = False,
) -> None:
    """Train the VAE, pretrain SpikeGen, or fine-tune it. Extra KEY=VALUE arguments override the config.

    Runs on one CPU as it is, and on N GPUs or nodes under `accelerate launch` or `torchrun`.
    A log.dir that holds a run is continued with --resume, restarted with --overwrite, and
    otherwise refused. With --resume/--resume-from and no --config, the run's own config.json
    is used.
    """
    from spikegen.train import Trainer, load_config

    if export is not None and not (resume or resume_from):
        raise SpikeGenError("--export needs --resume or --resume-from: it exports a checkpoint")
    if export is not None and export.exists() and (not export.is_dir() or any(export.iterdir())) and not overwrite:
        raise OutputExistsError(f"{export} exists and is not empty; pass --overwrite to replace it")
    overrides = list(ctx.args)
    if config is None and (resume or resume_from):
        config = _run_config(resume_from, overrides)
        if config is not None and resume_from is not None and not any(o.startswith("log.dir=") for o in overrides):
            overrides.append(f"log.dir={config.parent}")
    cfg = load_config(config, overrides + [f"stage={stage}"])
    trainer = Trainer(cfg, resume=resume_from or resume or None, progress=not no_progress, export_only=export is not None,
                      overwrite=overwrite and export is None)
    if export is not None:
        if overwrite and export.exists():
            import shutil

            shutil.rmtree(export) if export.is_dir() else export.unlink()
        out = trainer.export(export)
        typer.echo(f"exported step {trainer.step} to {out}")
        return
    if trainer.step >= int(cfg["train"]["steps"]):
        typer.echo(f"the run in {trainer.out} already finished (step {trainer.step} of {cfg['train']['steps']}); "
                   f"nothing to do. Raise train.steps to continue it.")
        return
    last = trainer.fit()
    if trainer.is_main:
        typer.echo(f"done: step {trainer.step}, loss {last.get('loss', float('nan')):.4f}; weights in {trainer.out / 'final'}")


def _run_config(resume_from: Optional[Path], overrides: list[str]) -> Optional[Path]:
    """The ``config.json`` a run stored: in RUN, or two levels above a checkpoint folder
    (RUN/checkpoints/step-N), or in the ``log.dir=`` given as an override."""
    cands = []
    if resume_from is not None:
        cands += [resume_from, resume_from.parent.parent, resume_from.parent]
    cands += [Path(o.split("=", 1)[1]) for o in overrides if o.startswith("log.dir=")]
    for c in cands:
        if (c / "config.json").is_file():
            return c / "config.json"
    return None


# --- spikegen nvs: novel-view synthesis (docs/nvs.md); the logic is in spikegen.tasks.nvs ---
nvs_app = typer.Typer(help="Novel-view synthesis of high-speed scenes: prepare, restore, 3DGS train, eval.",
                      no_args_is_help=True)
app.add_typer(nvs_app, name="nvs")
NoProgress = Annotated[bool, typer.Option("--no-progress", help="No progress bar.")]


@nvs_app.command("prepare")
def nvs_prepare(
    scene: Annotated[Path, typer.Argument(help="A sharp Blender/NeRF-synthetic scene (transforms_train.json [+ _test]).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output scene folder: blurry views, spikes/, sharp/, prepare.json.")],
    vth: Annotated[float, typer.Option("--vth", help="Integrate-and-fire threshold V_th.")] = 1.0,
    gain: Annotated[float, typer.Option(help="Charge per step of a white pixel.")] = DEFAULT_GAIN,
    frames: Annotated[int, typer.Option(help="Spike frames per view.")] = 8,
    kernels: Annotated[int, typer.Option(help="Motion kernels averaged per blur.")] = 8,
    size: Annotated[int, typer.Option(help="Blur kernel size in pixels of the source images (scaled with --resolution).")] = 40,
    seed: Annotated[int, typer.Option(help="Random seed (per-view seeds derive from it).")] = 0,
    resolution: Annotated[Optional[int], typer.Option(help="Resize so the longer side has N pixels (intrinsics scaled).")] = None,
    test_every: Annotated[int, typer.Option("--test-every", help="Without transforms_test.json: hold out views 0, k, 2k, ... as sharp test views (0 = none).")] = 8,
    background: Annotated[str, typer.Option(help="Background of RGBA views: white, black or R,G,B.")] = "white",
    overwrite: Overwrite = False,
    no_progress: NoProgress = False,
) -> None:
    """Synthesise blurry views (kernel-bank motion blur) and spike streams from a sharp scene."""
    from spikegen.tasks.nvs import prepare_scene

    _need("--vth", vth, above=0)
    _need("--gain", gain, above=0)
    _need("--frames", frames, lo=1)
    _need("--kernels", kernels, lo=1)
    _need("--size", size, lo=1)
    _need("--resolution", resolution, lo=8)
    _need("--test-every", test_every, lo=0)
    _need_seed(seed)

    m = prepare_scene(scene, output, v_th=vth, gain=gain, frames=frames, kernels=kernels, size=size, seed=seed,
                      resolution=resolution, test_every=test_every, background=background, overwrite=overwrite,
                      progress=not no_progress)
    w, h = m["camera"]["size"]
    typer.echo(f"wrote {output}: {m['splits']['train']} blurry training views with spikes, {m['splits']['test']} sharp "
               f"test views, {w}x{h}, in {m['seconds']:.1f} s")


@nvs_app.command("restore")
def nvs_restore(
    scene: Annotated[Path, typer.Argument(help="A scene written by `spikegen nvs prepare`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder: the restored scene.")],
    method: Annotated[str, typer.Option(help="spikegen, tfp or tfi.")] = "spikegen",
    weights: Annotated[Optional[Path], typer.Option(help="SpikeGen weights folder (default: the shipped weights).")] = None,
    gamma: Annotated[float, typer.Option(help="SpikeGen modality ratio: 0 = RGB only, 1 = spikes only.")] = 0.5,
    steps: Annotated[Optional[int], typer.Option(help="Diffusion steps (default: the model's; 25 for tiny).")] = None,
    batch: Annotated[int, typer.Option(help="Views per SpikeGen call.")] = 4,
    seed: Annotated[int, typer.Option(help="Sampler seed.")] = 0,
    device: Annotated[Optional[str], typer.Option(help="Device for SpikeGen (default: cuda if available, else cpu).")] = None,
    colour: Annotated[str, typer.Option("--colour", help="SpikeGen: input (its luminance, the blurry view's chroma) or model (its own, gamma-faded colours). (default: input)")] = "input",
    overwrite: Overwrite = False,
    no_progress: NoProgress = False,
) -> None:
    """Restore every training view (SpikeGen, TFP or TFI) and write the restored scene."""
    from spikegen.tasks.nvs import restore_scene

    _need("--gamma", gamma, lo=0, hi=1)
    _need("--steps", steps, lo=1)
    _need("--batch", batch, lo=1)
    _need_seed(seed)

    r = restore_scene(scene, output, method=method, weights=weights, gamma=gamma, steps=steps, batch=batch, seed=seed,
                      device=device, overwrite=overwrite, progress=not no_progress, colour=colour)
    vs = (r.get("vs_sharp") or {}).get("mean") or {}
    score = f"; vs sharp: PSNR {vs['psnr']:.2f} dB (blurry {vs['psnr_blurry']:.2f})" if vs else ""
    typer.echo(f"wrote {output}: {r['splits'].get('train', 0)} views restored by {method} in {r['seconds']:.1f} s{score}")


@nvs_app.command("train")
def nvs_train(
    scene: Annotated[Path, typer.Argument(help="A Blender scene, e.g. the output of `spikegen nvs restore`.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Run folder (default: SCENE/3dgs).")] = None,
    iterations: Annotated[int, typer.Option(help="Training iterations.")] = 30000,
    ssim_weight: Annotated[float, typer.Option("--ssim-weight", help="Weight of (1 - SSIM) in the loss.")] = 0.2,
    resolution: Annotated[Optional[int], typer.Option(help="Train at this longer image side (intrinsics scaled).")] = None,
    init_points: Annotated[int, typer.Option("--init-points", help="Random initial Gaussians in [-1.5, 1.5]^3.")] = 100000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    background: Annotated[str, typer.Option(help="Background: white, black or R,G,B.")] = "white",
    overwrite: Overwrite = False,
    no_progress: NoProgress = False,
) -> None:
    """3D Gaussian splatting (gsplat, CUDA) on the training views, then PSNR/SSIM/LPIPS on the test views."""
    from spikegen.tasks.nvs import train_3dgs

    _need("--iterations", iterations, lo=1)
    _need("--ssim-weight", ssim_weight, lo=0, hi=1)
    _need("--resolution", resolution, lo=8)
    _need("--init-points", init_points, lo=1)
    _need_seed(seed)

    r = train_3dgs(scene, output, iterations=iterations, ssim_weight=ssim_weight, resolution=resolution,
                   background=background, overwrite=overwrite, progress=not no_progress, init_points=init_points, seed=seed)
    m = r.get("metrics") or {}
    typer.echo(f"trained {r['train']['gaussians']} Gaussians in {r['train']['seconds']:.0f} s"
               + (f"; test PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, LPIPS {m['lpips']:.4f}" if m else ""))


@nvs_app.command("eval")
def nvs_eval(
    run: Annotated[Path, typer.Argument(help="A `spikegen nvs train` run folder, or a folder of renders named like the views (r_0.png).")],
    scene: Annotated[Optional[Path], typer.Option(help="Scene holding the ground truth (default: the run's).")] = None,
    split: Annotated[str, typer.Option(help="Which transforms_{split}.json to score.")] = "test",
    renders: Annotated[Optional[Path], typer.Option(help="Renders folder (default: RUN/renders, else RUN).")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Metrics JSON (default: RUN/metrics.json).")] = None,
    background: Annotated[Optional[str], typer.Option(help="Background of RGBA ground truth (default: the run's, else white).")] = None,
    no_lpips: Annotated[bool, typer.Option("--no-lpips", help="Skip LPIPS.")] = False,
    overwrite: Overwrite = False,
) -> None:
    """PSNR / SSIM / LPIPS of renders against a split's ground truth (runs on CPU)."""
    from spikegen.tasks.nvs import evaluate_renders

    r = evaluate_renders(run, scene=scene, split=split, renders=renders, background=background, use_lpips=not no_lpips,
                         output=output, overwrite=overwrite)
    typer.echo(f"{len(r['views'])} {split} views: " + ", ".join(f"{k.upper()} {v:.4f}" for k, v in r["mean"].items()))
    typer.echo(f"wrote {output or Path(run) / 'metrics.json'}")


@app.command()
def view(
    file: Annotated[Path, typer.Argument(help="A spike file: .dat (PKU), .npz or .npy.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.mp4, OUT.gif or a folder of PNG frames.")],
    tfp: Annotated[Optional[int], typer.Option("--tfp", help="Also show the TFP of W frames around each frame, side by side.")] = None,
    tfp_scale: Annotated[Optional[float], typer.Option("--tfp-scale", help="TFP display gain (default: the first block's 99.5th percentile -> white).")] = None,
    start: Annotated[Optional[str], typer.Option("--start", help="First frame shown: an index or a time (10ms, 0.5s; rounded down) at --fps-camera. (default: 0)")] = None,
    end: Annotated[Optional[str], typer.Option("--end", help="Stop before this frame: an index or a time (rounded up; exclusive). (default: the end of the file)")] = None,
    every: Annotated[int, typer.Option(help="Show one frame in K.")] = 1,
    fps: Annotated[float, typer.Option(help="Frame rate of the video file.")] = 30.0,
    fps_camera: Annotated[Optional[float], typer.Option("--fps-camera", help="Camera frame rate in Hz, for the time stamps and --start/--end times (default: the .npz metadata's fps, else 20000).")] = None,
    zoom: Annotated[int, typer.Option(help="Integer up-scaling of the frames (nearest).")] = 1,
    height: Height = None,
    width: Width = None,
    raw_width: RawWidth = None,
    no_flip: NoFlip = False,
    drop_partial: Partial = False,
    overwrite: Overwrite = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Raw spike frames as a video (MP4, GIF or PNGs), stamped with frame index and time."""
    from spikegen.tasks.view import view_file

    for flag, value, kw in (("--tfp", tfp, dict(lo=1)), ("--tfp-scale", tfp_scale, dict(above=0)), ("--every", every, dict(lo=1)),
                            ("--fps", fps, dict(above=0)), ("--fps-camera", fps_camera, dict(above=0)), ("--zoom", zoom, dict(lo=1))):
        _need(flag, value, **kw)

    r = view_file(
        file, output, start=start if start is not None else 0, end=end, every=every, tfp_window=tfp, tfp_scale=tfp_scale, fps=fps,
        fps_camera=fps_camera, zoom=zoom, overwrite=overwrite, progress=not no_progress,
        **_dat_kwargs(height, width, raw_width, no_flip, drop_partial),
    )
    w, h = r["size"]
    typer.echo(f"wrote {r['output']}: {r['frames']} frames of {w}x{h} (frames {r['range'][0]}..{r['range'][1] - 1}, every {r['range'][2]})")


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: runs the app and turns user errors into one line and exit code 2."""
    try:
        app(args=argv, standalone_mode=True)
    except SpikeGenError as exc:
        msg = str(exc)
        if "partial='drop'" in msg:
            msg += " (on the command line: --drop-partial)"
        _echo(f"error: {msg}")
        sys.exit(2)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        _echo(f"error: {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        _echo("interrupted")
        sys.exit(130)
    except MemoryError:
        _echo("error: out of memory; try a smaller input (or, for deblur, a smaller --tile)")
        sys.exit(1)
    except Exception as exc:  # never a traceback for the user; SPIKEGEN_DEBUG=1 shows it
        import os

        if os.environ.get("SPIKEGEN_DEBUG"):
            raise
        _echo(f"error: unexpected {type(exc).__name__}: {exc} (a bug: please report it; SPIKEGEN_DEBUG=1 shows the traceback)")
        sys.exit(1)


if __name__ == "__main__":
    main()
