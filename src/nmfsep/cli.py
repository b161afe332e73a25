"""The `nmfsep` command line: parse options, call the library, report with rich on stderr.

No signal processing here. stdout carries data only (JSON lines with --json); people read stderr.
Exit codes: 0 every input done, 1 some input failed, 2 usage error.
"""

import errno
import json
import sys

import click

from . import __version__
from .errors import BadValueError, NmfsepError

EXIT_FAILED = 1
EXIT_USAGE = 2
# The same as nmfsep.grouping.METHODS (tested), not imported from it so that --help stays fast.
GROUPINGS = ["auto", "none", "learned", "timbre", "coactivation", "pitch", "flatness"]
MAX_PITCH_SHIFTS = 12  # nmfsep.model.MAX_PITCH_SHIFTS (tested), for the same reason
MAX_BLENDED = 6  # nmfsep.blend.MAX_STEMS (tested), for the same reason
CLIPPED_TRAINING_SHARE = 0.01  # learn warns of a training file with more of a channel's samples at its extremes
# --format: soundfile's format and, for the lossy ones, their codec (the subtype).
STEM_FORMATS = {"wav": ("WAV", None), "flac": ("FLAC", None), "mp3": ("MP3", "MPEG_LAYER_III"),
                "ogg": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS")}
# click >= 8.2 raises this for a bare `nmfsep`; older versions print the help and exit 0 themselves.
NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def parse_beta(value: str) -> float:
    names = {"kl": 1.0, "is": 0.0, "euclidean": 2.0}
    try:
        return names[value.lower()] if value.lower() in names else float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not kl, is, euclidean or a number") from None


class Beta(click.ParamType):
    name = "kl|is|euclidean|FLOAT"

    def convert(self, value, param, ctx):
        return value if isinstance(value, float) else parse_beta(str(value))


class PitchShifts(click.ParamType):
    """learn --pitch-shifts: 'auto' or a whole number of semitones, 0 to MAX_PITCH_SHIFTS."""
    name = "N|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text.lower() == "auto":
            return "auto"
        if not (text.isascii() and text.isdigit()):
            self.fail(f"{value!r} is neither auto nor a whole number of semitones from 0 to {MAX_PITCH_SHIFTS}",
                      param, ctx)
        return click.IntRange(0, MAX_PITCH_SHIFTS).convert(int(text), param, ctx)


# Options shared by several commands (click makes a new Option each time one is applied).
BETA = click.option("--beta", type=Beta(), default="kl", show_default=True,
                    help="Divergence: kl (1), is (0), euclidean (2) or any number.")
SEED = click.option("--seed", type=int, default=0, show_default=True,
                    help="Seed of every random choice: the grouping's restarts (the learned grouping's "
                         "partition searches, the other methods' k-means), the randomized SVD "
                         "of the NNDSVDa start of spectrograms over 600 bins and 600 frames (below, an exact "
                         "SVD: deterministic), the random start where there are more components than bins "
                         "or frames, and the discriminative training of a model set. The same input, "
                         "settings and seed give the same stems.")
N_FFT = click.option("--n-fft", type=click.IntRange(min=16), default=None,
                     help="FFT size in samples [default: ~46 ms at the input's rate].")
HOP = click.option("--hop", "hop_length", type=click.IntRange(min=1), default=None,
                   help="Hop in samples [default: n_fft/4].")
TOL = click.option("--tol", type=click.FloatRange(min=0), default=1e-4, show_default=True,
                   help="Stop when the loss improves by less than this fraction.")


def max_iter_option(help="Maximum NMF iterations."):
    return click.option("--iter", "max_iter", type=click.IntRange(min=1), default=200, show_default=True,
                        help=help)


class Group(click.Group):
    """Usage errors and user errors as one line on stderr with exit codes 2 and 1; no traceback."""

    def main(self, args=None, prog_name=None, **extra):
        extra.pop("standalone_mode", None)
        try:
            return super().main(args, "nmfsep", standalone_mode=False, **extra)
        except NO_ARGS_IS_HELP as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
            sys.exit(0)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else "nmfsep"
            click.echo(f"{command}: error: {exc.format_message()} (see '{command} --help')", err=True)
            sys.exit(EXIT_USAGE)
        except click.exceptions.Abort:
            click.echo("nmfsep: interrupted", err=True)
            sys.exit(130)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except NmfsepError as exc:
            click.echo(f"nmfsep: error: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        except MemoryError:
            click.echo("nmfsep: error: out of memory: shorter inputs or smaller settings (-k, -j, --pitch-shifts) "
                       "need less", err=True)
            sys.exit(EXIT_FAILED)
        except BrokenPipeError:  # the reader of stdout went away (`| head`): stop quietly
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_FAILED)
        except OSError as exc:  # a full device, for stdout (the JSON lines) most likely
            if exc.errno != errno.ENOSPC:
                raise
            import os

            click.echo(f"nmfsep: error: {exc.filename or 'stdout'}: cannot write ({exc.strerror})", err=True)
            if sys.stdout is not None:  # drop what is still buffered: it cannot be written either
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_FAILED)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nmfsep")
def cli():
    """Separate the sources of a single recording with non-negative matrix factorization."""


def separation_options(command):
    """The options that decide a separation, shared by `split` and `plot`."""
    options = [
        click.option("-k", "n_sources", type=click.IntRange(min=1), default=2, show_default=True,
                     help="Number of sources."),
        BETA,
        max_iter_option("Maximum NMF iterations (with two models or more, at most 30 fit the activations "
                        "before the trained layers: README, Supervised)."),
        TOL,
        SEED,
        click.option("--power", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Mask exponent: 2 = Wiener (power ratio), 1 = magnitude ratio.  [default: 2]"),
        N_FFT,
        HOP,
        click.option("--components", "n_components", type=click.IntRange(min=1), default=None,
                     help="NMF components grouped into -k sources [default: three factorizations, of "
                          "16, 24 and 32 (fewer for short inputs), averaged; where they disagree the "
                          "masks move toward an even split, trading separation for never much worse "
                          "than the input. C: one factorization, masks at full strength]."),
        click.option("--grouping", type=click.Choice(GROUPINGS), default="auto", show_default=True,
                     help="How components are grouped into sources in blind separation "
                          "(auto = learned: a model trained on mixtures with known sources judges which "
                          "components belong together, or one component per source where that models the input "
                          "nearly as well and the learned groups disagree with it, as for steady tones; "
                          "timbre: MFCCs and flatness of each basis; pitch: harmonic-sieve f0 "
                          "and flatness; none: one component per source)."),
        click.option("--model", "model_paths", multiple=True, metavar="FILE|NAME",
                     help="Learned bases of one source: a model file (from `nmfsep learn`) or the name of a "
                          "built-in model (see `nmfsep models`); repeat for each source. A bare name of a "
                          "built-in (no / and no .npz) is the built-in even where a file of that name exists "
                          "(write ./NAME for the file). Built-ins beside your own models at another rate or "
                          "STFT are re-gridded to theirs."),
        click.option("--free", "n_free", type=click.IntRange(min=0), default=0, show_default=True,
                     help="With --model: extra bases learned on the mixture (the 'residual' stem)."),
        click.option("--blend", type=click.FloatRange(0, 1), default=None,
                     help=f"With 2 to {MAX_BLENDED} --model and no --free: the share of the blind split (as many "
                          "stems, each named after the model it overlaps most above chance; --components and --grouping apply to "
                          "it; --components must then be at least the number of models) in the masks: its weight in their geometric "
                          "mean; 0 = the models alone.  [default: 0.5 where the 2 to "
                          f"{MAX_BLENDED} models include a built-in (0.35 with the built-in noise among them; 0 with it "
                          "beside a model of your own), else 0]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def separation_settings(ctx, n_sources, beta, max_iter, tol, seed, power, n_fft, hop_length,
                        n_components, grouping, model_paths, n_free, blend=None, quiet=False):
    """Settings from separation_options, checked as `split` checks them; a note on stderr
    (unless quiet) where models were conformed (nmfsep.models.load_set: the built-ins to the
    user's models, or the user's down to the built-ins')."""
    from .models import load_set
    from .pipeline import Settings

    if n_free and not model_paths:
        raise click.BadParameter("--free needs at least one --model", ctx, param_hint="'--free'")
    if blend is not None and not 0 <= blend <= 1:  # FloatRange lets nan through
        raise click.BadParameter(f"{blend} is not in the range 0<=x<=1.", ctx, param_hint="'--blend'")
    if blend and (not 2 <= len(model_paths) <= MAX_BLENDED or n_free):
        raise click.BadParameter(f"blends the split of 2 to {MAX_BLENDED} --model with the blind split of as many "
                                 f"stems: give that many --model{' and leave out --free' if n_free else ''}",
                                 ctx, param_hint="'--blend'")
    if model_paths and ctx.get_parameter_source("n_sources").name == "COMMANDLINE":
        stems = len(model_paths) + (1 if n_free else 0)
        if n_sources != stems:
            hint = (" (add --free N for a 'residual' stem)"
                    if not n_free and n_sources == stems + 1 else "")
            given = (f"{len(model_paths)} model{'s' * (len(model_paths) != 1)}{' and --free' if n_free else ''} "
                     f"give{'s' * (len(model_paths) == 1 and not n_free)}")
            raise click.BadParameter(f"{n_sources} stem{'s' * (n_sources != 1)} asked, but {given} {stems}{hint}",
                                     ctx, param_hint="'-k'")
    try:  # the options alone: values that cannot work together, or like --beta nan, are usage errors
        Settings(n_sources, beta, max_iter, tol, seed, power, n_fft, hop_length,  # -k is the blind one's
                 n_components=None if model_paths else n_components, grouping=grouping).check()
    except NmfsepError as exc:
        raise click.UsageError(str(exc), ctx) from None
    models, conformed = load_set(model_paths)
    settings = Settings(n_sources, beta, max_iter, tol, seed, power, n_fft, hop_length, models, n_free,
                        n_components=n_components, grouping=grouping, blend=blend)
    if n_components is not None and n_components < len(models) and settings.blind_share:
        raise click.BadParameter(f"{n_components} is fewer than the {len(models)} stems of the blind split blended "
                                 "with the models: give at least that many, or --blend 0 for the models alone",
                                 ctx, param_hint="'--components'")
    if models:
        try:   # --n-fft/--hop against the models' is a usage error (BadValueError); models that differ are not
            settings.models_stft()
        except BadValueError as exc:
            raise click.UsageError(str(exc), ctx) from None
    settings.check()
    if len(models) == 1 and not n_free and not quiet:
        click.echo(f"nmfsep: note: one --model and no --free give one stem, the whole input: add --free N "
                   f"(what {models[0].name!r} does not cover) or another --model", err=True)
    if conformed and not quiet:   # the set is usable (checked): its names are distinct, its grid is one
        first, grid = conformed[0], models[0]
        listed = ", ".join(repr(c.name) for c in conformed)
        moved_builtin = first.builtin
        click.echo(f"nmfsep: note: {'built-in ' if moved_builtin else ''}model{'s' if len(conformed) > 1 else ''} "
                   f"{listed} ({first.sample_rate} Hz, n_fft {first.n_fft}, hop {first.hop_length}) conformed to "
                   f"{'the other' if moved_builtin else 'the built-in'} models' {grid.sample_rate} Hz, "
                   f"n_fft {grid.n_fft}, hop {grid.hop_length}", err=True)
    return settings


@cli.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--output", "out_dir", default="separated", show_default=True,
              help="Output folder or URL (s3://bucket/out/); stems go to DIR/{track}/{stem}.{ext}.")
@separation_options
@click.option("--filename", "template", default="{track}/{stem}.{ext}", show_default=True,
              metavar="TEMPLATE", help="Stem path inside the output folder, from {track}, {stem} and {ext} "
                                       "(a name that does not end in .{ext} gets it appended).")
@click.option("--format", "out_format", type=click.Choice(list(STEM_FORMATS), case_sensitive=False),
              default=None, help="Stem file format; mp3, ogg (Vorbis) and opus are lossy, so their stems "
                                 "add up to the input only approximately [default: the input's; FLAC "
                                 "for a lossy input (mp3, ogg, opus)].")
@click.option("--subtype", type=click.Choice(["PCM_16", "PCM_24", "FLOAT"], case_sensitive=False),
              default=None, help="Stem sample format of wav and flac stems [default: the input's, "
                                 "24-bit for a lossy input]. Integer stems beyond full scale are "
                                 "clamped with a warning; FLOAT (wav) keeps them exact.")
@click.option("--stdout", "stdout_stem", metavar="STEM", default=None,
              help="Write this one stem as WAV to stdout (for pipes) instead of files.")
@click.option("-r", "--recursive", is_flag=True, help="Look for inputs in the subfolders of INPUT folders.")
@click.option("--glob", "pattern", metavar="PATTERN", default=None,
              help="Files of INPUT folders to split, e.g. '*.flac' [default: every audio format].")
@click.option("-j", "n_jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Files split in parallel (processes; at most one per CPU).")
@click.option("--scheduler", metavar="ADDRESS", envvar="DASK_SCHEDULER_ADDRESS", default=None,
              help="Split the inputs as tasks on the Dask cluster of this scheduler: tcp://HOST:PORT, or "
                   "the path of a scheduler file (dask-jobqueue, dask-mpi) [default: $DASK_SCHEDULER_ADDRESS, "
                   "Dask's own variable; unset or '': this machine]. Inputs and -o on a disk every worker shares, "
                   "or URLs (s3://...). "
                   "Needs the dask extra: pip install 'nmfsep[dask]'.")
@click.option("--force", is_flag=True, help="Overwrite existing stems.")
@click.option("--report", is_flag=True,
              help="Also write report.html beside the stems: players, spectrograms, W and H, settings.")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose stems all exist.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per input on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
@click.pass_context
def split(ctx, inputs, out_dir, force, as_json, quiet, template, out_format, subtype, stdout_stem,
          recursive, pattern, n_jobs, skip_existing, report, scheduler, **options):
    """Split each INPUT (an audio file, a folder of them, a URL of either such as s3://bucket/in/
    with the dask extra, or - for audio on stdin: WAV, FLAC, Ogg, MP3) into stems.

    Blind by default (-k stems, source1 = lowest spectral centroid). With --model, the models'
    bases are held fixed and each model gives a stem named after it (supervised); --free N adds
    N bases learned on the mixture for whatever the models do not cover (semi-supervised).
    """
    from .batch import Output

    settings = separation_settings(ctx, quiet=quiet, **options)
    if force and skip_existing:
        raise click.UsageError("--force and --skip-existing contradict each other: choose one", ctx)
    if report and stdout_stem:
        raise click.UsageError("--report writes report.html beside stem files; --stdout writes none", ctx)
    fmt, codec = STEM_FORMATS[out_format.lower()] if out_format else (None, None)
    if codec and subtype:
        raise click.UsageError(f"--format {out_format.lower()} has no --subtype (its codec decides; "
                               "--subtype is for wav and flac)", ctx)
    output = Output(out_dir, template, force, skip_existing, fmt, codec or (subtype and subtype.upper()),
                    stdout_stem, report)
    scheduler = chosen_scheduler(ctx, scheduler, quiet)
    if scheduler is not None:
        check_scheduler(ctx, scheduler, inputs, out_dir, n_jobs, stdout_stem)
    sys.exit(run_split(ctx, inputs, settings, output, recursive, pattern, n_jobs, as_json, quiet, scheduler))


def chosen_scheduler(ctx, scheduler, quiet):
    """The scheduler to split on, or None for this machine: --scheduler '' is this machine, even
    where DASK_SCHEDULER_ADDRESS is set; the variable alone, without the dask extra installed, is
    noted and left aside (it may be set for other tools)."""
    from click.core import ParameterSource

    if scheduler is None or not scheduler.strip():
        return None
    if ctx.get_parameter_source("scheduler") is ParameterSource.ENVIRONMENT and not dask_installed():
        if not quiet:
            click.echo("nmfsep: note: DASK_SCHEDULER_ADDRESS is set, but the dask extra is not installed "
                       "(pip install 'nmfsep[dask]'): splitting on this machine", err=True)
        return None
    return scheduler


def dask_installed() -> bool:
    """Whether dask.distributed can be imported (the dask extra)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def check_scheduler(ctx, scheduler, inputs, out_dir, n_jobs, stdout_stem) -> None:
    """The usage errors of --scheduler: options that need this machine, and a missing extra."""
    from .storage import in_process_only

    if n_jobs > 1:
        raise click.UsageError("-j and --scheduler: the cluster's workers split in parallel; leave out -j", ctx)
    if stdout_stem:
        raise click.UsageError("--stdout and --scheduler: the stem would be written on a worker; leave out --stdout", ctx)
    if "-" in inputs:
        raise click.UsageError("- (stdin) and --scheduler: the workers cannot read this stdin; give files", ctx)
    for path in (*inputs, out_dir):
        if in_process_only(path):
            raise click.UsageError(f"{path}: memory:// lives in this process, which the workers cannot "
                                   "see (use s3:// or a shared disk with --scheduler)", ctx)
    if not dask_installed():
        raise click.UsageError("--scheduler needs the dask extra: pip install 'nmfsep[dask]'", ctx)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, metavar="FILE...")
@click.option("-o", "--output", "model_path", required=True, metavar="MODEL.npz",
              help="Where to write the model.")
@click.option("-k", "n_bases", type=click.IntRange(min=1), default=128, show_default=True,
              help="Number of bases (spectral templates) to learn; 64 suits a model split alone with --free.")
@click.option("--name", default=None, help="Stem name when splitting with this model [default: MODEL's file name].")
@click.option("--pitch-shifts", type=PitchShifts(), default="auto", show_default=True, metavar="N|auto",
              help=f"Also learn from the training spectra shifted by +-1 ... +-N semitones (0-{MAX_PITCH_SHIFTS}), "
                   "to cover notes the training lacks; auto: 0 where the built-in speech model fits the "
                   "recordings best (voices; also many steady noises; speech at 16 kHz or less is "
                   "sometimes missed, at 8 kHz often), else 1. 0 also suits a single model split with --free.")
@BETA
@max_iter_option()
@SEED
@N_FFT
@HOP
@click.option("--force", is_flag=True, help="Overwrite an existing model file.")
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
def learn(inputs, model_path, n_bases, name, pitch_shifts, beta, max_iter, seed, n_fft, hop_length, force, quiet):
    """Learn what one source sounds like from clean recordings of it (FILEs, laid end to end).

    Each FILE must hold sound and at least one STFT window of it. Long training audio is learned
    from evenly spaced frames of it (at most 131072 with the shifted copies: about 25 minutes at
    22.05 kHz with --pitch-shifts 0, 8 with 1), so that memory stays under about 3 GB.
    """
    import math
    import os

    from . import audio, spectrum
    from .batch import MAX_N_FFT
    from .model import save
    from .supervised import auto_pitch_shifts, learn as learn_bases, training_frames

    if not math.isfinite(beta):
        raise click.BadParameter(f"beta must be a finite number, got {beta}", param_hint="'--beta'")
    if inputs.count("-") > 1:
        raise click.BadParameter("- (stdin) is given more than once", param_hint="'FILE...'")
    if os.path.isdir(model_path):
        raise NmfsepError(f"{model_path}: is a folder: give the model a file name "
                          f"(-o {os.path.join(model_path, 'model.npz')})")
    if os.path.exists(model_path) and not force:
        raise NmfsepError(f"{model_path} already exists (use --force to overwrite)")
    if os.path.exists(model_path) and any(os.path.exists(p) and os.path.samefile(p, model_path) for p in inputs):
        raise NmfsepError(f"{model_path}: is a training file: the model would overwrite it (give another -o)")
    if not os.path.isdir(os.path.dirname(os.path.abspath(model_path))):
        raise NmfsepError(f"{model_path}: cannot write the model: no folder {os.path.dirname(model_path)}")
    sounds = [audio.read(p) for p in inputs]
    rate = sounds[0].sample_rate
    try:
        if n_fft is not None and n_fft > MAX_N_FFT:
            raise NmfsepError(f"n_fft {n_fft} is too large (at most {MAX_N_FFT} samples)")
        params = spectrum.default_params(rate, n_fft, hop_length)
    except NmfsepError as error:
        option = "--n-fft" if str(error).startswith("n_fft") else "--hop"
        raise click.BadParameter(f"{error} (at {rate} Hz)", param_hint=f"'{option}'") from None
    for path, sound in zip(map(audio.display_name, inputs), sounds):
        if sound.sample_rate != rate:
            raise NmfsepError(f"{path}: {sound.sample_rate} Hz, but {audio.display_name(inputs[0])} is "
                              f"{rate} Hz (all training files need one rate)")
        if sound.n_samples < params.n_fft:
            raise NmfsepError(f"{path}: too short to learn from: {sound.n_samples} samples, less than one "
                              f"STFT window (n_fft {params.n_fft})")
        try:
            spectrum.mean_level(spectrum.analyse(sound.samples, params)[1])
        except NmfsepError as error:
            raise NmfsepError(f"{path}: {error}") from None
        clipped = audio.clipped_share(sound.samples)
        if clipped > CLIPPED_TRAINING_SHARE and not quiet:
            click.echo(f"nmfsep: warning: {path}: {100 * clipped:.1f}% of its samples sit at its peak value "
                       "(clipped?): the model learns the distortion too; learn from an unclipped recording",
                       err=True)
    name = name or os.path.splitext(os.path.basename(model_path))[0]
    recordings, files = [s.samples for s in sounds], ", ".join(audio.display_name(p) for p in inputs)
    try:
        why = ""
        if pitch_shifts == "auto":
            pitch_shifts, closest = auto_pitch_shifts(recordings, rate)
            why = (f": auto, the built-in {closest} model fits it best" if closest
                   else ": auto, no built-in models to compare")
        model = learn_bases(recordings, rate, n_bases, name=name, beta=beta, max_iter=max_iter,
                            seed=seed, n_fft=n_fft, hop_length=hop_length, pitch_shifts=pitch_shifts)
    except NmfsepError as error:
        raise NmfsepError(f"{files}: {error}") from None
    save(model, model_path)
    if not quiet:
        n_frames = sum(spectrum.n_frames(s.n_samples, params) for s in sounds)
        kept = training_frames(n_frames, model.pitch_shifts)
        if kept < n_frames:
            click.echo(f"nmfsep: note: learned from {kept} of the {n_frames} frames (evenly spaced): the most "
                       f"that memory allows with pitch shifts {model.pitch_shifts}", err=True)
        seconds = sum(s.n_samples for s in sounds) / rate
        click.echo(f"{model_path}: {n_bases} bases of {name!r} from {seconds:.1f} s of audio "
                   f"({model.sample_rate} Hz, n_fft {model.n_fft}, hop {model.hop_length}, "
                   f"pitch shifts {model.pitch_shifts}{why})", err=True)


@cli.command("models")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per built-in model on stdout.")
def list_models(name, as_json):
    """List the built-in models, one line each: name, bases, sample rate and what it models
    (the first line of its card, nmfsep/models/NAME.md). With NAME: that model's card (what it
    was learned from, how it scores); with a model file of your own (MODEL.npz), its one line.
    Split with them by name: `nmfsep split x.wav --model speech --model noise`.
    """
    import os

    from . import models

    if name is not None and not name.strip():
        raise click.UsageError("NAME is empty: give a built-in's name or a model file")
    if name is not None and models.builtin_path(name) is None and (models.is_path(name) or os.path.isfile(name)):
        r = models.describe_file(name)   # raises for a file that is missing or not a model
        click.echo(json.dumps(r) if as_json else f"{r['name']}  {r['bases']} bases  {r['sample_rate']} Hz  "
                                                  f"n_fft {r['n_fft']}, hop {r['hop_length']}; {r['summary']}")
        return
    if name is not None:
        text = models.card(name)  # raises for a name that is not a built-in
        click.echo(json.dumps({**models.describe(name), "card": text}) if as_json else text, nl=as_json)
        return
    records = [models.describe(name) for name in models.names()]
    if not records:
        click.echo("nmfsep: no built-in models are installed", err=True)
    width = max((len(r["name"]) for r in records), default=0)
    for r in records:
        click.echo(json.dumps(r) if as_json else
                   f"{r['name']:<{width}}  {r['bases']} bases  {r['sample_rate']} Hz  {r['summary']}")


@cli.command("eval")
@click.option("--ref", "refs", multiple=True, required=True, metavar="REF",
              help="A true source (repeat once per source).")
@click.argument("estimates", nargs=-1, required=True, metavar="EST...")
@click.option("--mix", "mix_path", default=None, metavar="MIX",
              help="The mixture the estimates came from [default: the sum of the references, "
                   "given two or more].")
@click.option("--no-bss", is_flag=True, help="SI-SDR only (skip the slower SDR/SIR/SAR).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.option("--ordered", is_flag=True,
              help="Score the i-th EST against the i-th --ref, as many of each, instead of matching each "
                   "reference to its best estimate: for stems named after models (split --model), where "
                   "a swapped pair should score low.")
@click.option("-q", "--quiet", is_flag=True, help="No table, mixture line or progress on stderr.")
def evaluate(refs, estimates, mix_path, no_bss, as_json, quiet, ordered):
    """Score estimated stems against true sources: SI-SDR and its improvement over the mixture,
    and bss_eval's SDR, SIR and SAR (fast_bss_eval, in windows of bounded memory), each
    reference matched to its best estimate (--ordered: to the estimate in its place)."""
    import numpy as np
    from rich.console import Console

    from . import audio
    from .evaluate import FILTER_LENGTH, bss_window, score, windows

    if ordered and len(estimates) != len(refs):
        raise click.UsageError(f"--ordered pairs the i-th estimate with the i-th reference: give as many of each, "
                               f"got {len(estimates)} estimates and {len(refs)} --ref")
    if len(estimates) < len(refs):
        raise click.UsageError(f"{len(refs)} references need at least as many estimates, got {len(estimates)}")
    if mix_path is None and len(refs) == 1:
        raise click.UsageError("the mixture cannot be the sum of one reference: give --mix MIX")
    paths = (*refs, *estimates, *([mix_path] if mix_path else []))
    first = audio.read(paths[0])
    signals = np.empty((len(paths), *first.samples.shape), np.float32)  # one copy of every input

    def described(s):
        return (f"{s.sample_rate} Hz, {s.n_samples} frame{'s' * (s.n_samples != 1)}, "
                f"{s.n_channels} channel{'s' * (s.n_channels != 1)}")

    for i, path in enumerate(paths):
        sound = first if i == 0 else audio.read(path)
        if (sound.sample_rate, sound.n_samples, sound.n_channels) != (first.sample_rate, first.n_samples, first.n_channels):
            raise NmfsepError(f"{path}: {described(sound)} does not match {refs[0]} ({described(first)})")
        signals[i] = sound.samples
        del sound
    if not no_bss and first.n_samples < FILTER_LENGTH:
        raise NmfsepError(f"{refs[0]}: {first.n_samples} samples are too short for bss_eval's {FILTER_LENGTH}-tap "
                          "distortion filter: --no-bss scores SI-SDR only")
    references, ests = signals[: len(refs)], signals[len(refs): len(refs) + len(estimates)]
    mixture = signals[-1] if mix_path else None
    del first
    console = Console(stderr=True)
    if mix_path is None and not quiet:
        console.print(f"mixture: the sum of the {len(refs)} references (give --mix for another)",
                      markup=False, highlight=False, soft_wrap=True)
    n_windows = len(windows(references.shape[1], bss_window(len(refs), references.shape[2])))
    with steps_bar(console, "bss_eval", n_windows, "windows", not (quiet or no_bss) and console.is_terminal) as progress:
        rows = score(references, ests, mixture, with_bss_eval=not no_bss, progress=progress, ordered=ordered)
    for ref, row in zip(refs, rows):
        row["estimate"] = estimates[row["estimate"]]
        row["reference"] = ref
    metrics = [k for k in ("si_sdr", "si_sdr_improvement", "sdr", "sir", "sar") if k in rows[0]]
    with np.errstate(invalid="ignore"):
        mean = {k: float(np.mean([r[k] for r in rows])) for k in metrics}
    if as_json:
        def number(value):  # strict JSON has no Infinity or NaN (jq refuses them): null instead
            return value if np.isfinite(value) else None

        click.echo(json.dumps({"mixture": mix_path or "sum of references", "ordered": ordered,
                               "references": [{"reference": r["reference"], "estimate": r["estimate"],
                                               **{k: number(r[k]) for k in metrics}} for r in rows],
                               "mean": {k: number(v) for k, v in mean.items()}}, allow_nan=False))
        return
    if quiet:
        return
    from rich.table import Table

    table = Table(title="separation quality (dB)")
    for column in ("reference", "estimate", *metrics):
        table.add_column(column.replace("_improvement", " impr.").replace("_", "-"),
                         justify="left" if column in ("reference", "estimate") else "right",
                         overflow="fold")
    for r in rows:
        table.add_row(r["reference"], r["estimate"], *(f"{r[k]:.2f}" for k in metrics))
    table.add_row("mean", "", *(f"{mean[k]:.2f}" for k in metrics))
    console.print(table)


def run_split(ctx, inputs, settings, output, recursive, pattern, n_jobs, as_json, quiet, scheduler=None) -> int:
    """The batch behind `split`: find the inputs, check what can be checked before any work
    (template, STFT size, collisions, output folder, --stdout), split (on this machine, or as
    tasks on the Dask cluster of ``scheduler``), report; the exit code."""
    from rich.console import Console

    import logging

    from . import audio, batch, storage

    try:
        output.check()
    except NmfsepError as exc:
        raise click.UsageError(str(exc), ctx) from None
    if as_json and sys.stdout is None:
        raise click.UsageError("--json writes to stdout, which is closed", ctx)
    try:
        for path in (*inputs, output.folder):
            storage.check_no_credentials(path)
    except NmfsepError as exc:
        raise click.UsageError(str(exc), ctx) from None
    if n_jobs > 1 and any(storage.in_process_only(path) for path in (*inputs, output.folder)):
        raise click.UsageError("memory:// URLs live in this process only, where -j workers cannot see them: "
                               "use -j 1", ctx)
    jobs = batch.find_inputs(inputs, recursive, pattern, exclude=output.folder)
    try:
        batch.check_options(settings, jobs)
    except NmfsepError as exc:
        raise click.UsageError(str(exc), ctx) from None
    note_unsearched(inputs, pattern, output.folder, jobs, recursive)  # shown with -q too: not split
    stream = None
    if output.stdout_stem:
        check_stdout(ctx, output, settings, jobs, as_json)
        stream = sys.stdout.buffer
    else:
        try:
            batch.check_collisions(jobs, output, settings.stem_names)
        except NmfsepError as exc:
            raise click.UsageError(str(exc), ctx) from None
        batch.check_output_folder(output.folder)
    console = Console(stderr=True)
    if output.subtype in audio.LOSSY and not quiet:
        click.echo(f"nmfsep: note: {audio.LOSSY[output.subtype]} stems are lossy: they add up to the input "
                   "only approximately (wav or flac stems add up exactly)", err=True)
    counts = {"ok": 0, "skipped": 0, "error": 0}
    failures = []
    restore, client = interrupt_on_sigterm(), None
    try:
        if scheduler is not None:
            from . import cluster

            client = cluster.connect(scheduler)
            for name in ("distributed", "distributed.client"):  # their lines repeat ours
                logging.getLogger(name).setLevel(logging.CRITICAL)
            if not quiet:
                click.echo(f"nmfsep: splitting on the Dask scheduler {client.scheduler.address} "
                           f"({cluster.describe(client)})", err=True)
        with BatchProgress(console, len(jobs), not quiet and console.is_terminal, quiet) as bars:
            records = (batch.run(jobs, settings, output, n_jobs, bars, stream) if client is None else
                       cluster.run(jobs, settings, output, client, bars))
            for record in records:
                bars.finished(record["input"])
                counts[record["status"]] += 1
                if record["status"] == "error":
                    failures.append(record)
                    bars.print(f"nmfsep: error: {record['error']}")
                else:
                    for warning in clip_warnings(record):
                        bars.print(warning)
                    if not quiet:
                        if record.get("resampled"):
                            bars.print(resampled_note(record))
                        note = register_note(record, settings)
                        if note:
                            bars.print(note)
                        bars.print(status_line(record))
                if as_json:
                    click.echo(json.dumps(record))
    finally:
        if client is not None:
            client.close()
        restore()
    if not quiet and len(jobs) > 1:
        print_summary(console, counts, failures)
    return EXIT_FAILED if failures else 0


def note_unsearched(inputs, pattern, out_dir, jobs, recursive) -> None:
    """One line on stderr for each folder input whose subfolders hold audio that was not
    searched (no -r), and one for its files in formats libsndfile does not read (.m4a, ...); a
    folder with nothing to split already fails with those hints."""
    import os

    from .batch import unreadable_files, unreadable_note, unsearched_subfolders

    failed = {job.input for job in jobs if job.error}
    for given in dict.fromkeys(inputs):
        if given != "-" and given not in failed and os.path.isdir(given):
            count = unsearched_subfolders(given, pattern, out_dir) if not recursive else 0
            if count:
                click.echo(f"nmfsep: note: {given}: {count} subfolder{'s' if count != 1 else ''} with audio "
                           "not searched (use -r)", err=True)
            skipped = unreadable_files(given, recursive, out_dir) if pattern is None else []
            if skipped:
                click.echo(f"nmfsep: note: {given}: {unreadable_note(skipped)}", err=True)


def check_stdout(ctx, output, settings, jobs, as_json) -> None:
    if sys.stdout is None:
        raise click.UsageError("--stdout writes the stem to stdout, which is closed", ctx)
    if as_json:
        raise click.UsageError("--stdout and --json both write to stdout: choose one", ctx)
    if output.format not in (None, "WAV"):
        raise click.UsageError("--stdout writes WAV: leave out --format", ctx)
    if output.stdout_stem not in settings.stem_names:
        raise click.BadParameter(f"{output.stdout_stem!r} is not a stem of this split "
                                 f"(stems: {', '.join(settings.stem_names)})", ctx, param_hint="'--stdout'")
    if len(jobs) != 1:
        raise click.UsageError(f"--stdout writes one stem of one input, but {len(jobs)} inputs were given", ctx)
    if sys.stdout.isatty():
        raise click.UsageError("--stdout writes WAV data: redirect it (> stem.wav) or pipe it "
                               "(| sox -t wav - out.mp3)", ctx)


def interrupt_on_sigterm():
    """Make SIGTERM interrupt like Ctrl-C (so temporary files are removed); returns the undo."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


def clip_warnings(record) -> list[str]:
    """One warning line per stem that a bounded sample format clipped (the record's "clipped"),
    with the options that keep the stems exact: --subtype float where the stems' format holds
    float samples, else --format wav too."""
    import math

    import soundfile as sf

    from .audio import display_name

    name = display_name(record["input"])
    fix = "--subtype float" if sf.check_format(record["format"] or "WAV", "FLOAT") else "--format wav --subtype float"
    return [f"nmfsep: warning: {name}: stem '{c['stem']}' clipped: {c['samples']} samples beyond full scale, "
            f"peak {c['peak']:.3f} (+{20 * math.log10(c['peak']):.2f} dB); use {fix} to keep the "
            "stems exact" for c in record.get("clipped") or []]


def status_line(record) -> str:
    """One line for people about an input that was split or skipped."""
    import os

    from .audio import display_name
    from .storage import is_url

    stems = record["stems"]
    name = display_name(record["input"])
    if stems and stems[0]["path"] == "-":
        where = f"{stems[0]['name']} written to stdout"
    elif stems and is_url(stems[0]["path"]):
        folder = os.path.commonprefix([s["path"].rsplit("/", 1)[0] + "/" for s in stems]).rsplit("/", 1)[0]
        where = f"{len(stems)} stem{'s' if len(stems) != 1 else ''} in {folder}/"
    else:
        folder = os.path.commonpath([os.path.dirname(s["path"]) or "." for s in stems]) if stems else "."
        where = f"{len(stems)} stem{'s' if len(stems) != 1 else ''} in {click.format_filename(folder)}/"
    if record["status"] == "skipped":
        return f"{name}: skipped, its {where.replace(' in ', ' exist in ' if len(stems) != 1 else ' exists in ', 1)}"
    report = f", report {click.format_filename(record['report'])}" if record.get("report") else ""
    return (f"{name}: {where}{report} ({record['format']} {record['subtype']}, {record['iterations']} iterations, "
            f"{record['seconds']:.1f} s)")


def resampled_note(record) -> str:
    """The line that says an input was separated at the models' rate (see batch's "resampled")."""
    from .audio import display_name

    name = display_name(record["input"])
    rates = record["resampled"]
    return (f"nmfsep: note: {name}: {rates['from']} Hz resampled to the models' {rates['to']} Hz "
            f"and the stems back to {rates['from']} Hz")


def register_note(record, settings) -> str | None:
    """The line that says a voice beside music was split with speech_high (see batch's "register"),
    or that a streamed one was not checked (nmfsep.register); None where neither."""
    from .audio import display_name
    from .register import voice_beside_music

    name, picked = display_name(record["input"]), record.get("register")
    if picked is not None and picked["model"] == "speech_high":
        return (f"nmfsep: note: {name}: a high voice (median pitch {picked['pitch_hz']:.0f} Hz): "
                f"stem {picked['stem']} split with the built-in {picked['model']}")
    if record.get("mode") == "stream" and voice_beside_music(settings) is not None:
        return (f"nmfsep: note: {name}: streamed, so a high voice is not split with speech_high (the register "
                "is picked in memory only: see Built-in models in the README)")
    return None


def print_summary(console, counts, failures) -> None:
    """The end of a batch on stderr: counts, and a table of the inputs that failed."""
    from rich.table import Table
    from rich.text import Text

    from .audio import display_name

    title = f"{sum(counts.values())} inputs: {counts['ok']} done"
    title += f", {counts['skipped']} skipped" if counts["skipped"] else ""
    title += f", {counts['error']} failed"
    if not failures:
        console.print(title, markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=title, title_justify="left")
    table.add_column("failed input", overflow="fold")
    table.add_column("error", overflow="fold")
    for record in failures:
        name = display_name(record["input"])
        error = record["error"]
        table.add_row(Text(record["input"]), Text(error[len(name) + 2:] if error.startswith(name + ": ") else error))
    console.print(table)


class BatchProgress:
    """Rich progress bars on stderr, one per input being split plus one for the whole batch,
    driven by batch.run's listener calls; also prints lines above the bars."""

    def __init__(self, console, n_inputs, enabled, quiet=False):
        self.console, self.enabled, self.quiet = console, enabled, quiet
        self.tasks = {}
        self.n_inputs, self.finished_inputs = n_inputs, 0
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bars = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[count]}"),
                                 TimeElapsedColumn(), console=console, transient=True)
            self.overall = (self.bars.add_task("all inputs", total=n_inputs, count=f"0/{n_inputs} inputs")
                            if n_inputs > 1 else None)

    def started(self, job):
        """A bar with no count until the separation says its total (reading and the STFT come first);
        an input started again (a retry on a cluster) gets a new bar in place of its old one."""
        if self.enabled:
            if job.input in self.tasks:
                self.bars.remove_task(self.tasks.pop(job.input))
            self.tasks[job.input] = self.bars.add_task(job.input, total=None, count="")

    def progress(self, job, done, total):
        """done of total solver iterations (total: planned, true once the separation ends)."""
        if self.enabled and job.input in self.tasks:
            self.bars.update(self.tasks[job.input], completed=done, total=total,
                             count=f"{done}/{total} iterations")

    def training_started(self, folder):
        """The line (unless -q) and the bar of the models' one-time training (batch.Listener)."""
        if not self.quiet:
            from . import cache

            wanted = cache.folder()
            kept = (f"kept in {click.format_filename(str(folder))} for later splits with them" if folder else
                    "not kept: the cache is off (NMFSEP_CACHE_DIR is empty)" if wanted is None else
                    f"not kept: the cache folder {click.format_filename(str(wanted))} cannot be written")
            self.print(f"nmfsep: training the models to tell their sources apart, once for all inputs ({kept})")
        if self.enabled:
            self.tasks[None] = self.bars.add_task("training the models (once)", total=None, count="")

    def training_progress(self, done, total):
        if self.enabled and None in self.tasks:
            self.bars.update(self.tasks[None], completed=done, total=total, count=f"{done}/{total} steps")
            if done >= total:
                self.bars.remove_task(self.tasks.pop(None))

    def finished(self, name):
        if self.enabled:
            if name in self.tasks:
                self.bars.remove_task(self.tasks.pop(name))
            if self.overall is not None:
                self.finished_inputs += 1
                self.bars.update(self.overall, completed=self.finished_inputs,
                                 count=f"{self.finished_inputs}/{self.n_inputs} inputs")

    def print(self, text):
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def __enter__(self):
        if self.enabled:
            self.bars.start()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.bars.stop()


# --- pictures: plot, rank, demo ---------------------------------------------------------------

def parse_list(ctx, param, value):
    """A comma-separated list of positive numbers ('220,587.3') as floats; None when not given."""
    if value is None:
        return None
    example = "0.5,0.7" if param is not None and param.name == "periods" else "220,587"
    try:
        numbers = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers (e.g. {example})") from None
    if not numbers or not all(n > 0 for n in numbers):
        raise click.BadParameter(f"{value!r}: give positive numbers separated by commas (e.g. {example})")
    return numbers


class steps_bar:
    """A rich progress bar on stderr for `total` steps of something (iterations, ranks)."""

    def __init__(self, console, label, total, unit, enabled):
        self.enabled = enabled
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                TextColumn("{task.completed}/{task.total} " + unit),
                                TimeElapsedColumn(), console=console, transient=True)
            self.task = self.bar.add_task(label, total=total)

    def __enter__(self):
        if not self.enabled:
            return None
        self.bar.start()
        return lambda done, total: self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()


@cli.command()
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", "figure_path", required=True, metavar="FIGURE.png",
              help="Where to write the figure (.png, .svg or .pdf).")
@separation_options
@click.option("--compare", type=click.Choice(["pca"]), default=None,
              help="pca: PCA's signed components beside NMF's parts, on this input (no masks: no --blend).")
@click.option("--force", is_flag=True, help="Overwrite an existing figure.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
@click.pass_context
def plot(ctx, input_path, figure_path, compare, force, quiet, **options):
    """Draw the separation of INPUT: its spectrogram (log frequency, dB), the bases W, the
    activations H over time, each source's mask and the loss curve, in one figure.

    With --compare pca: PCA's components (signed) beside NMF's non-negative parts instead.
    """
    from rich.console import Console

    from . import audio
    from .pipeline import split_sources
    from .supervised import train_models, training_needed

    if compare == "pca":   # PCA beside NMF draws no masks: a blend would change nothing it shows
        if options["blend"]:
            raise click.BadParameter("plays no part in --compare pca, which draws no masks", ctx, param_hint="'--blend'")
        options["blend"] = 0.0
    settings = separation_settings(ctx, quiet=quiet, **options)
    from . import figures

    figures.check_output(figure_path, force)
    sound = audio.read(input_path)
    console = Console(stderr=True)
    if training_needed(settings):
        with steps_bar(console, "training the models (once)", None, "steps", not quiet and console.is_terminal) as progress:
            settings = train_models(settings, progress)
    else:
        settings = train_models(settings)  # a shipped training of built-ins, if any
    with steps_bar(console, input_path, settings.max_iter, "iterations", not quiet and console.is_terminal) as progress:
        separation = split_sources(sound.samples, sound.sample_rate, settings, progress, name=input_path)
    spectrogram, rate = separation.spectrogram(sound.samples, sound.sample_rate)
    title = audio.display_name(input_path)
    if compare == "pca":
        fig = figures.pca_figure(spectrogram, rate, separation.params, separation.bases,
                                 separation.activations, title=title)
    else:
        fig = figures.separation_figure(spectrogram, rate, separation, beta=settings.beta,
                                        title=f"{title}: {len(separation.names)} sources, "
                                              f"{separation.bases.shape[1]} components"
                                              + (f", masks blended with a blind split ({separation.blend:g})"
                                                 if separation.blend else ""))
    figures.save(fig, figure_path, force)
    if not quiet:
        width, height = (round(v) for v in fig.get_size_inches() * figures.DPI)
        click.echo(f"{figure_path}: {'PCA beside NMF' if compare else 'separation'} of {title} "
                   f"({width} x {height} px)", err=True)


@cli.command()
@click.argument("input_path", metavar="INPUT")
@click.option("--max-k", "max_k", type=click.IntRange(min=3, max=100), default=10, show_default=True,
              help="Try every k from 1 to this.")
@click.option("-o", "--output", "figure_path", default=None, metavar="FIGURE.png",
              help="Also draw the loss against k (.png, .svg or .pdf).")
@BETA
@max_iter_option("Maximum NMF iterations per k.")
@TOL
@SEED
@N_FFT
@HOP
@click.option("--force", is_flag=True, help="Overwrite an existing figure.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No table or progress on stderr.")
def rank(input_path, max_k, figure_path, beta, max_iter, tol, seed, n_fft, hop_length, force, as_json, quiet):
    """How many NMF components does INPUT need? The loss for k = 1..--max-k, and a suggested k.

    Each k starts from the best k-1 fit plus one component, so the loss never rises with k.
    The suggested k is the knee: the k farthest below the line from the first to the last k.
    """
    from rich.console import Console

    from . import audio, spectrum
    from .rank import KNEE_RULE, beta_name, knee, loss_by_rank

    if figure_path is not None:
        from . import figures

        figures.check_output(figure_path, force)
    sound = audio.read(input_path)
    params = spectrum.default_params(sound.sample_rate, n_fft, hop_length)
    magnitude = spectrum.analyse(sound.samples, params)[1]
    scale = float(magnitude.mean())
    if scale == 0.0:
        raise NmfsepError(f"{audio.display_name(input_path)}: is silent; there is nothing to factorize")
    if min(magnitude.shape) < 3:  # --max-k is at least 3
        raise NmfsepError(f"{audio.display_name(input_path)}: too short to rank ({magnitude.shape[1]} frames of "
                          f"{params.hop_length} samples; rank tries at least k = 1 to 3)")
    console = Console(stderr=True)
    with steps_bar(console, input_path, max_k, "ranks", not quiet and console.is_terminal) as progress:
        try:
            rows = loss_by_rank(magnitude / scale, max_k, beta=beta, max_iter=max_iter, tol=tol, seed=seed,
                                progress=progress)
        except NmfsepError as error:
            raise NmfsepError(f"{audio.display_name(input_path)}: {error}") from None
    ks, losses = [r.k for r in rows], [r.loss for r in rows]
    suggested = knee(ks, losses)
    if figure_path is not None:
        figures.save(figures.rank_figure(ks, losses, suggested, KNEE_RULE, beta=beta,
                                         title=audio.display_name(input_path)), figure_path, force)
    if not quiet:
        from rich.table import Table

        console.print(f"{audio.display_name(input_path)}: loss by number of components "
                      f"({beta_name(beta)} divergence of the spectrogram scaled to mean 1)",
                      markup=False, highlight=False, soft_wrap=True)
        table = Table()
        for column in ("k", "loss", "change", "iterations", ""):
            table.add_column(column, justify="left" if not column else "right")
        for i, r in enumerate(rows):
            change = "" if i == 0 else f"{100 * (r.loss - rows[i - 1].loss) / rows[i - 1].loss:+.1f}%"
            table.add_row(str(r.k), f"{r.loss:.6g}", change, str(r.n_iter),
                          "<- suggested" if r.k == suggested else "")
        console.print(table)
        console.print(f"suggested k = {suggested}: the {KNEE_RULE}" if suggested is not None else
                      "no suggested k: the loss is flat", markup=False, highlight=False, soft_wrap=True)
        if figure_path is not None:
            console.print(f"{figure_path}: loss against k", markup=False, highlight=False, soft_wrap=True)
    if as_json:
        record = {"input": input_path, "ranks": [{"k": r.k, "loss": r.loss} for r in rows],
                  "suggested_k": suggested, "rule": KNEE_RULE}
        if figure_path is not None:
            record["figure"] = figure_path
        click.echo(json.dumps(record))


@cli.command()
@click.option("-o", "--output", "out_dir", default="demo", show_default=True, metavar="DIR",
              help="Folder for the audio and the figure.")
@click.option("--sources", "n_sources", type=click.IntRange(2, 3), default=None,
              help="Number of sources, 2 or 3 [default: as many as --f0 gives, else 2].")
@click.option("--f0", "f0s", callback=parse_list, default=None, metavar="HZ,HZ[,HZ]",
              help="Fundamental of each source in Hz [default: 220,587.33,830.61].")
@click.option("--period", "periods", callback=parse_list, default=None, metavar="S,S[,S]",
              help="Each source's rhythm: seconds from one note to the next [default: 0.5,0.7,0.9].")
@click.option("--duration", type=click.FloatRange(1, 60), default=4.0, show_default=True,
              help="Length of the mixture in seconds.")
@click.option("--grouping", type=click.Choice(GROUPINGS), default="none", show_default=True,
              help="How split's pipeline groups components (none: one component per source).")
@max_iter_option()
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (phases, rhythms, NMF).")
@click.option("--force", is_flag=True, help="Overwrite the files of an earlier demo.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No table on stderr.")
@click.pass_context
def demo(ctx, out_dir, n_sources, f0s, periods, duration, grouping, max_iter, seed, force, as_json, quiet):
    """Synthesize 2 or 3 harmonic sources, each with its own pitch and rhythm, mix them, separate
    the mixture blind and score each source (SI-SDR against the truth, in dB).

    Then the control: two sources with near-identical spectra (the same tone 1% apart in pitch)
    and different rhythms, which NMF cannot tell apart. Writes DIR/mixture.wav, each source's
    true and separated audio, DIR/near_identical/ and the figure DIR/demo.png.
    """
    from . import demo as demo_lib, figures

    given = [len(v) for v in (f0s, periods) if v is not None]
    if n_sources is None:
        n_sources = given[0] if given else 2
    for name, values in (("--f0", f0s), ("--period", periods)):
        if values is not None and len(values) != n_sources:
            raise click.BadParameter(f"{len(values)} values for {n_sources} sources", ctx, param_hint=f"'{name}'")
    try:
        demo_lib.source_specs(n_sources, f0s, periods)
        demo_lib.check_distinct(f0s)
    except NmfsepError as error:
        raise click.UsageError(str(error), ctx) from None
    paths = demo_lib.output_paths(out_dir, n_sources)
    demo_lib.check_outputs(paths, force)
    distinct, near = demo_lib.run(n_sources, f0s, periods, duration, seed, max_iter, grouping)
    demo_lib.write_audio(paths, distinct, near)
    figures.save(demo_lib.figure(distinct, near), paths["figure"], force=True)
    record = demo_lib.record(distinct, near, paths)
    if not quiet:
        from rich.console import Console
        from rich.table import Table

        console = Console(stderr=True)
        table = Table(title="demo: blind NMF separation of synthetic sources (SI-SDR, dB)",
                      title_justify="left")
        for column in ("source", "f0 (Hz)", "period (s)", "separated", "mixture"):
            table.add_column(column, justify="left" if column == "source" else "right")
        for experiment in (record["sources"], record["near_identical"]["sources"]):
            control = experiment is record["near_identical"]["sources"]
            for s in experiment:
                table.add_row(("control " if control else "") + s["name"], f"{s['f0']:.2f}", f"{s['period']:g}",
                              f"{s['si_sdr']:.1f}", f"{s['mixture_si_sdr']:.1f}")
            if not control:
                table.add_section()
        console.print(table)
        console.print(f"Distinct spectra separate: {', '.join(f'{v:.1f}' for v in record['si_sdr'])} dB. "
                      f"The control, the same tone twice {100 * (demo_lib.NEAR_RATIO - 1):.0f}% apart in "
                      f"pitch with different rhythms: {', '.join(f'{v:.1f}' for v in record['near_identical']['si_sdr'])} dB. "
                      "NMF tells sources apart by their spectra; with the same spectrum their rhythms "
                      "are not enough.", markup=False, highlight=False)
        console.print(f"Listen: {out_dir}/mixture.wav, source*_separated.wav; look: {paths['figure']}",
                      markup=False, highlight=False, soft_wrap=True)
    if as_json:
        click.echo(json.dumps(record))


@cli.command()
@click.argument("input_path", metavar="[INPUT]", required=False)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port; the URL printed says which).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on. Anything but loopback lets other machines use the page "
                   "(and upload to it): a warning says so.")
@click.option("--no-browser", is_flag=True, help="Print the URL only; do not open a browser.")
def explore(input_path, port, host, no_browser):
    """Explore NMF on INPUT in a local web page: the k slider, one update at a time, PCA and
    k-means beside NMF, deep NMF, and separate-and-listen with each stem's mask.

    Without INPUT: the synthetic playground, whose tones you move until NMF can no longer
    tell them apart. Long inputs are explored on an excerpt (at most 30 s) that the page moves;
    recordings can also be uploaded from the page. Needs the explore extra
    (pip install 'nmfsep[explore]'). Ctrl-C stops the server.
    """
    try:
        from .explore.app import create_app, is_loopback, make_server, stop
    except ImportError as exc:
        if exc.name not in ("flask", "werkzeug"):
            raise
        from .explore import EXTRA_HINT

        click.echo(f"nmfsep: error: {EXTRA_HINT}", err=True)
        sys.exit(EXIT_USAGE)
    app = create_app(input_path, loopback_only=is_loopback(host))
    server = make_server(app, host, port)
    if not is_loopback(host):
        click.echo(f"nmfsep: warning: listening on {host}, not on this machine's loopback: anyone who can "
                   f"reach it on port {server.port} can use the page and upload files to it", err=True)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.port}/"
    click.echo(f"nmfsep explore: {url} (Ctrl-C stops)", err=True)
    if not no_browser:
        import webbrowser

        webbrowser.open(url)
    undo = interrupt_on_sigterm()
    try:
        server.serve_forever()          # returns on Ctrl-C or SIGTERM (werkzeug's server catches it)
    except KeyboardInterrupt:
        pass
    finally:
        stop(app)
        undo()
        server.server_close()
    click.echo("nmfsep explore: stopped", err=True)


main = cli

if __name__ == "__main__":
    main()
