"""The ``spikegen`` command line.

Every command has ``--help``. Bad input ends with a one-line reason on stderr and a non-zero
exit code (2 for bad input, 1 for anything unexpected); existing outputs are never
overwritten unless ``--overwrite`` is given.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from spikegen.errors import SpikeGenError

app = typer.Typer(
    name="spikegen",
    help="Spike-camera toolkit and SpikeGen: read, simulate, reconstruct, deblur, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Options shared by every command that reads a PKU .dat file.
Height = Annotated[Optional[int], typer.Option("--height", help="Frame height of a .dat file [default: 250]; checked against an .npz.")]
Width = Annotated[Optional[int], typer.Option("--width", help="Frame width of a .dat file [default: 400]; checked against an .npz.")]
RawWidth = Annotated[Optional[int], typer.Option("--raw-width", help="Stored row width when the camera writes extra columns (e.g. 416); they are dropped.")]
NoFlip = Annotated[bool, typer.Option("--no-flip", help="Do not flip rows (the stored .dat frame is upside down by default).")]
Partial = Annotated[bool, typer.Option("--drop-partial", help="Read only the whole frames of a .dat whose size is not a whole number of frames.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]


def _dat_kwargs(height: Optional[int], width: Optional[int], raw_width: Optional[int], no_flip: bool,
                drop_partial: bool = False) -> dict:
    return {"height": height, "width": width, "raw_width": raw_width, "flip": False if no_flip else None,
            "partial": "drop" if drop_partial else "error"}


def _echo(msg: str) -> None:
    typer.echo(msg, err=True)


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="A spike file: .dat (PKU) or .npz.")],
    height: Height = None,
    width: Width = None,
    raw_width: RawWidth = None,
    no_flip: NoFlip = False,
    drop_partial: Partial = False,
) -> None:
    """Frames, size, mean firing rate and a per-frame rate summary of a spike file."""
    from spikegen.tasks.toolkit import spike_file_summary

    summary = spike_file_summary(file, **_dat_kwargs(height, width, raw_width, no_flip, drop_partial))
    for key, value in summary.items():
        typer.echo(f"{key:>18}: {value}")


@app.command()
def simulate(
    input: Annotated[Path, typer.Argument(help="An image, a folder of frames, or a video file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.dat or OUT.npz.")],
    method: Annotated[str, typer.Option(help="'if' (integrate-and-fire) or 'photon' (photon sampling).")] = "if",
    vth: Annotated[float, typer.Option("--vth", help="Firing threshold V_th.")] = 1.0,
    gain: Annotated[float, typer.Option(help="Intensity gain: a white pixel adds `gain` per step.")] = 0.5,
    frames: Annotated[int, typer.Option(help="Spike frames for a still image (method if/photon).")] = 200,
    interp: Annotated[int, typer.Option(help="Temporal up-sampling of video frames by linear interpolation.")] = 1,
    coverage: Annotated[float, typer.Option(help="Photon sampling: fraction of pixels drawn per frame.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    no_flip: NoFlip = False,
    overwrite: Overwrite = False,
) -> None:
    """Simulate a spike stream from an image, a frame folder or a video."""
    from spikegen.tasks.toolkit import simulate_file

    n, h, w, rate = simulate_file(
        input, output, method=method, v_th=vth, gain=gain, frames=frames, interp=interp,
        coverage=coverage, seed=seed, flip=not no_flip, overwrite=overwrite,
    )
    typer.echo(f"wrote {output}: {n} frames of {h}x{w}, mean firing rate {rate:.4f}")


@app.command()
def reconstruct(
    file: Annotated[Path, typer.Argument(help="A spike file: .dat or .npz.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="OUT.png (one frame), OUT.mp4 or a folder of PNGs (with --all).")],
    method: Annotated[str, typer.Option(help="tfp, tfi or spikegen (TFP & Spike, needs weights).")] = "tfp",
    window: Annotated[int, typer.Option(help="Window length in frames (TFP; SpikeGen input window).")] = 41,
    frame: Annotated[Optional[int], typer.Option(help="Reconstruct the frame at this index (default: the middle frame).")] = None,
    all_frames: Annotated[bool, typer.Option("--all", help="Reconstruct every frame, streaming over the file.")] = False,
    stride: Annotated[int, typer.Option(help="With --all: one output frame every `stride` input frames.")] = 1,
    vth: Annotated[float, typer.Option("--vth", help="TFI: threshold V_th.")] = 1.0,
    scale: Annotated[Optional[float], typer.Option(help="TFP: multiply the firing rate by this (default 1; 1/0.6 for Spk2ImgNet-style data).")] = None,
    fps: Annotated[float, typer.Option(help="Frame rate of an MP4 output.")] = 30.0,
    weights: Annotated[Optional[Path], typer.Option(help="SpikeGen weights folder (default: the shipped tiny weights).")] = None,
    height: Height = None,
    width: Width = None,
    raw_width: RawWidth = None,
    no_flip: NoFlip = False,
    drop_partial: Partial = False,
    overwrite: Overwrite = False,
) -> None:
    """Reconstruct images from a spike stream (TFP, TFI or SpikeGen)."""
    from spikegen.tasks.reconstruct import reconstruct_file

    written = reconstruct_file(
        file, output, method=method, window=window, frame=frame, all_frames=all_frames, stride=stride,
        v_th=vth, scale=scale, fps=fps, weights=weights, overwrite=overwrite,
        **_dat_kwargs(height, width, raw_width, no_flip, drop_partial),
    )
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
    """Motion-blur an image with the pretraining kernel bank (DESIGN.md section 2)."""
    from spikegen.tasks.toolkit import blur_file

    blur_file(image, output, kernels=kernels, size=size, seed=seed, overwrite=overwrite)
    typer.echo(f"wrote {output}")


@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder (relative to the current directory).")] = Path("outputs/demo"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """The whole job on embedded defaults; writes an HTML report you can open."""
    from spikegen.tasks.demo import run_demo

    index = run_demo(output, seed=seed)
    typer.echo(f"open {index}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    stage: Annotated[str, typer.Argument(help="vae, pretrain or finetune.")],
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="A YAML config (configs/*.yaml).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue exactly from the run's latest checkpoint.")] = False,
    resume_from: Annotated[Optional[Path], typer.Option("--resume-from", help="Continue from this checkpoint or run folder.")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar (logs still go to log.csv).")] = False,
) -> None:
    """Train the VAE, pretrain SpikeGen, or fine-tune it. Extra KEY=VALUE arguments override the config.

    Runs on one CPU as it is, and on N GPUs or nodes under `accelerate launch` or `torchrun`.
    """
    from spikegen.train import Trainer, load_config

    cfg = load_config(config, list(ctx.args) + [f"stage={stage}"])
    trainer = Trainer(cfg, resume=resume_from or resume or None, progress=not no_progress)
    last = trainer.fit()
    if trainer.is_main:
        typer.echo(f"done: step {trainer.step}, loss {last.get('loss', float('nan')):.4f}; weights in {trainer.out / 'final'}")


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


if __name__ == "__main__":
    main()
