"""The `nmfsep` command line: parse options, call the library, report with rich on stderr.

No signal processing here. stdout carries data only (JSON lines with --json); people read stderr.
Exit codes: 0 every input done, 1 some input failed, 2 usage error.
"""

import json
import sys

import click

from . import __version__
from .errors import NmfsepError

EXIT_FAILED = 1
EXIT_USAGE = 2
# The same as nmfsep.grouping.METHODS (tested), not imported from it so that --help stays fast.
GROUPINGS = ["auto", "none", "timbre", "coactivation", "pitch", "flatness"]
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
        except BrokenPipeError:  # the reader of stdout went away (`| head`): stop quietly
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_FAILED)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nmfsep")
def cli():
    """Separate the sources of a single recording with non-negative matrix factorization."""


@cli.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-k", "n_sources", type=click.IntRange(min=1), default=2, show_default=True,
              help="Number of sources (stems) to write.")
@click.option("-o", "--output", "out_dir", default="separated", show_default=True,
              help="Output folder; stems go to DIR/{track}/{stem}.{ext}.")
@click.option("--beta", type=Beta(), default="kl", show_default=True,
              help="Divergence: kl (1), is (0), euclidean (2) or any number.")
@click.option("--iter", "max_iter", type=click.IntRange(min=1), default=200, show_default=True,
              help="Maximum NMF iterations.")
@click.option("--tol", type=click.FloatRange(min=0), default=1e-4, show_default=True,
              help="Stop when the loss improves by less than this fraction.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--power", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True,
              help="Mask exponent: 2 = Wiener (power ratio), 1 = magnitude ratio.")
@click.option("--n-fft", type=click.IntRange(min=16), default=None,
              help="FFT size in samples [default: ~46 ms at the input's rate].")
@click.option("--hop", "hop_length", type=click.IntRange(min=1), default=None,
              help="Hop in samples [default: n_fft/4].")
@click.option("--components", "n_components", type=click.IntRange(min=1), default=None,
              help="NMF components to factorize before grouping them into -k sources "
                   "[default: chosen from the input's length].")
@click.option("--grouping", type=click.Choice(GROUPINGS), default="auto", show_default=True,
              help="How components are grouped into sources in blind separation.")
@click.option("--model", "model_paths", multiple=True, metavar="FILE",
              help="Learned bases of one source (from `nmfsep learn`); repeat for each source. "
                   "One stem per model, named after it.")
@click.option("--free", "n_free", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --model: extra bases learned on the mixture, written as the 'residual' stem.")
@click.option("--filename", "template", default="{track}/{stem}.{ext}", show_default=True,
              metavar="TEMPLATE", help="Stem path inside the output folder, from {track}, {stem} and {ext}.")
@click.option("--format", "out_format", type=click.Choice(["wav", "flac"], case_sensitive=False),
              default=None, help="Stem file format [default: the input's].")
@click.option("--subtype", type=click.Choice(["PCM_16", "PCM_24", "FLOAT"], case_sensitive=False),
              default=None, help="Stem sample format [default: the input's].")
@click.option("--stdout", "stdout_stem", metavar="STEM", default=None,
              help="Write this one stem as WAV to stdout (for pipes) instead of files.")
@click.option("-r", "--recursive", is_flag=True, help="Look for inputs in the subfolders of INPUT folders.")
@click.option("--glob", "pattern", metavar="PATTERN", default=None,
              help="Files of INPUT folders to split, e.g. '*.flac' [default: every audio format].")
@click.option("-j", "n_jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Files split in parallel (processes; at most one per CPU).")
@click.option("--force", is_flag=True, help="Overwrite existing stems.")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose stems all exist.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per input on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
@click.pass_context
def split(ctx, inputs, n_sources, out_dir, beta, max_iter, tol, seed, power, n_fft, hop_length,
          n_components, grouping, model_paths, n_free, force, as_json, quiet,
          template, out_format, subtype, stdout_stem, recursive, pattern, n_jobs, skip_existing):
    """Split each INPUT (an audio file, a folder of them, or - for a WAV stream on stdin) into stems.

    Blind by default (-k stems, source1 = lowest spectral centroid). With --model, the models'
    bases are held fixed and each model gives a stem named after it (supervised); --free N adds
    N bases learned on the mixture for whatever the models do not cover (semi-supervised).
    """
    from .batch import Output
    from .model import load
    from .pipeline import Settings

    if n_free and not model_paths:
        raise click.BadParameter("--free needs at least one --model", param_hint="'--free'")
    if model_paths and ctx.get_parameter_source("n_sources").name == "COMMANDLINE":
        stems = len(model_paths) + (1 if n_free else 0)
        if n_sources != stems:
            raise click.BadParameter(f"{n_sources} stems asked, but {len(model_paths)} models"
                                     f"{' and --free' if n_free else ''} give {stems}", param_hint="'-k'")
    models = tuple(load(p) for p in model_paths)
    settings = Settings(n_sources, beta, max_iter, tol, seed, power, n_fft, hop_length, models, n_free,
                        n_components=n_components, grouping=grouping)
    settings.check()
    if force and skip_existing:
        raise click.UsageError("--force and --skip-existing contradict each other: choose one", ctx)
    output = Output(out_dir, template, force, skip_existing, out_format and out_format.upper(),
                    subtype and subtype.upper(), stdout_stem)
    sys.exit(run_split(ctx, inputs, settings, output, recursive, pattern, n_jobs, as_json, quiet))


@cli.command()
@click.argument("inputs", nargs=-1, required=True, metavar="FILE...")
@click.option("-o", "--output", "model_path", required=True, metavar="MODEL.npz",
              help="Where to write the model.")
@click.option("-k", "n_bases", type=click.IntRange(min=1), default=32, show_default=True,
              help="Number of bases (spectral templates) to learn.")
@click.option("--name", default=None, help="Stem name when splitting with this model [default: MODEL's file name].")
@click.option("--beta", type=Beta(), default="kl", show_default=True,
              help="Divergence: kl (1), is (0), euclidean (2) or any number.")
@click.option("--iter", "max_iter", type=click.IntRange(min=1), default=200, show_default=True,
              help="Maximum NMF iterations.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--n-fft", type=click.IntRange(min=16), default=None,
              help="FFT size in samples [default: ~46 ms at the input's rate].")
@click.option("--hop", "hop_length", type=click.IntRange(min=1), default=None,
              help="Hop in samples [default: n_fft/4].")
@click.option("--force", is_flag=True, help="Overwrite an existing model file.")
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
def learn(inputs, model_path, n_bases, name, beta, max_iter, seed, n_fft, hop_length, force, quiet):
    """Learn what one source sounds like from clean recordings of it (FILEs, laid end to end)."""
    import os

    from . import audio
    from .model import save
    from .pipeline import learn as learn_bases

    if os.path.exists(model_path) and not force:
        raise NmfsepError(f"{model_path} already exists (use --force to overwrite)")
    sounds = [audio.read(p) for p in inputs]
    for path, sound in zip(inputs, sounds):
        if sound.sample_rate != sounds[0].sample_rate:
            raise NmfsepError(f"{path}: {sound.sample_rate} Hz, but {inputs[0]} is "
                              f"{sounds[0].sample_rate} Hz (all training files need one rate)")
    name = name or os.path.splitext(os.path.basename(model_path))[0]
    model = learn_bases([s.samples for s in sounds], sounds[0].sample_rate, n_bases, name=name,
                        beta=beta, max_iter=max_iter, seed=seed, n_fft=n_fft, hop_length=hop_length)
    save(model, model_path)
    if not quiet:
        seconds = sum(s.n_samples for s in sounds) / sounds[0].sample_rate
        click.echo(f"{model_path}: {n_bases} bases of {name!r} from {seconds:.1f} s of audio "
                   f"({model.sample_rate} Hz, n_fft {model.n_fft}, hop {model.hop_length})", err=True)


@cli.command("eval")
@click.option("--ref", "refs", multiple=True, required=True, metavar="REF",
              help="A true source (repeat once per source).")
@click.argument("estimates", nargs=-1, required=True, metavar="EST...")
@click.option("--mix", "mix_path", default=None, help="The mixture [default: the sum of the references].")
@click.option("--no-bss", is_flag=True, help="SI-SDR only (skip the slower SDR/SIR/SAR).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def evaluate(refs, estimates, mix_path, no_bss, as_json):
    """Score estimated stems against true sources: SI-SDR (and its improvement over the mixture),
    SDR, SIR and SAR (bss_eval, mir_eval), each reference matched to its best estimate."""
    import numpy as np

    from . import audio
    from .evaluate import score

    if len(estimates) < len(refs):
        raise click.UsageError(f"{len(refs)} references need at least as many estimates, got {len(estimates)}")
    sounds = [audio.read(p) for p in (*refs, *estimates, *([mix_path] if mix_path else []))]
    first = sounds[0]
    for path, sound in zip((*refs, *estimates, mix_path), sounds):
        if (sound.sample_rate, sound.n_samples, sound.n_channels) != (first.sample_rate, first.n_samples, first.n_channels):
            raise NmfsepError(f"{path}: {sound.sample_rate} Hz, {sound.n_samples} frames, {sound.n_channels} channels "
                              f"does not match {refs[0]} ({first.sample_rate} Hz, {first.n_samples} frames, "
                              f"{first.n_channels} channels)")
    references = np.stack([s.samples for s in sounds[: len(refs)]])
    ests = np.stack([s.samples for s in sounds[len(refs): len(refs) + len(estimates)]])
    mixture = sounds[-1].samples if mix_path else None
    rows = score(references, ests, mixture, with_bss_eval=not no_bss)
    for ref, row in zip(refs, rows):
        row["estimate"] = estimates[row["estimate"]]
        row["reference"] = ref
    metrics = [k for k in ("si_sdr", "si_sdr_improvement", "sdr", "sir", "sar") if k in rows[0]]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in metrics}
    if as_json:
        click.echo(json.dumps({"references": [{"reference": r["reference"], "estimate": r["estimate"],
                                               **{k: r[k] for k in metrics}} for r in rows], "mean": mean}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="separation quality (dB)")
    for column in ("reference", "estimate", *metrics):
        table.add_column(column.replace("_improvement", " impr.").replace("_", "-"),
                         justify="left" if column in ("reference", "estimate") else "right",
                         overflow="fold")
    for r in rows:
        table.add_row(r["reference"], r["estimate"], *(f"{r[k]:.2f}" for k in metrics))
    table.add_row("mean", "", *(f"{mean[k]:.2f}" for k in metrics))
    Console(stderr=True).print(table)


def run_split(ctx, inputs, settings, output, recursive, pattern, n_jobs, as_json, quiet) -> int:
    """The batch behind `split`: find the inputs, check what can be checked before any work
    (template, STFT size, collisions, output folder, --stdout), split, report; the exit code."""
    from rich.console import Console

    from . import batch

    try:
        output.check()
    except NmfsepError as exc:
        raise click.UsageError(str(exc), ctx) from None
    batch.check_options(settings)
    jobs = batch.find_inputs(inputs, recursive, pattern, exclude=output.folder)
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
    counts = {"ok": 0, "skipped": 0, "error": 0}
    failures = []
    restore = interrupt_on_sigterm()
    try:
        with BatchProgress(console, len(jobs), not quiet and console.is_terminal) as bars:
            for record in batch.run(jobs, settings, output, n_jobs, bars, stream):
                bars.finished(record["input"])
                counts[record["status"]] += 1
                if record["status"] == "error":
                    failures.append(record)
                    bars.print(f"nmfsep: error: {record['error']}")
                elif not quiet:
                    bars.print(status_line(record))
                if as_json:
                    click.echo(json.dumps(record))
    finally:
        restore()
    if not quiet and len(jobs) > 1:
        print_summary(console, counts, failures)
    return EXIT_FAILED if failures else 0


def check_stdout(ctx, output, settings, jobs, as_json) -> None:
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


def status_line(record) -> str:
    """One line for people about an input that was split or skipped."""
    import os

    stems = record["stems"]
    name = "<stdin>" if record["input"] == "-" else record["input"]
    if stems and stems[0]["path"] == "-":
        where = f"{stems[0]['name']} written to stdout"
    else:
        folder = os.path.commonpath([os.path.dirname(s["path"]) or "." for s in stems]) if stems else "."
        where = f"{len(stems)} stems in {click.format_filename(folder)}/"
    if record["status"] == "skipped":
        return f"{name}: skipped, its {where.replace(' in ', ' exist in ', 1)}"
    return f"{name}: {where} ({record['iterations']} iterations, {record['seconds']:.1f} s)"


def print_summary(console, counts, failures) -> None:
    """The end of a batch on stderr: counts, and a table of the inputs that failed."""
    from rich.table import Table
    from rich.text import Text

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
        name = "<stdin>" if record["input"] == "-" else record["input"]
        error = record["error"]
        table.add_row(Text(record["input"]), Text(error[len(name) + 2:] if error.startswith(name + ": ") else error))
    console.print(table)


class BatchProgress:
    """Rich progress bars on stderr, one per input being split plus one for the whole batch,
    driven by batch.run's listener calls; also prints lines above the bars."""

    def __init__(self, console, n_inputs, enabled):
        self.console, self.enabled = console, enabled
        self.tasks = {}
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bars = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total} {task.fields[unit]}"),
                                 TimeElapsedColumn(), console=console, transient=True)
            self.overall = (self.bars.add_task("all inputs", total=n_inputs, unit="inputs")
                            if n_inputs > 1 else None)

    def started(self, job):
        if self.enabled:
            self.tasks[job.input] = self.bars.add_task(job.input, total=None, unit="iterations")

    def progress(self, job, done, total):
        if self.enabled and job.input in self.tasks:
            self.bars.update(self.tasks[job.input], completed=done, total=total)

    def finished(self, name):
        if self.enabled:
            if name in self.tasks:
                self.bars.remove_task(self.tasks.pop(name))
            if self.overall is not None:
                self.bars.advance(self.overall)

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

main = cli

if __name__ == "__main__":
    main()
