"""``actlab compare`` (run a comparison study) and ``actlab results`` (show a stored one).

``actlab compare`` with no argument runs the embedded default: scikit-learn's
digits, a small MLP, the seed activations against relu/gelu/silu, 3 seeds. Flags
override a ``--config`` file, which overrides the defaults. Re-running the same
command resumes: finished runs are skipped.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

from . import UsageError

__all__ = ["configure_compare", "run_compare", "configure_results", "run_results"]


def _comma_list(text: str) -> list[str]:
    from ..lab.config import ConfigError, split_top_level

    try:
        items = split_top_level(text)  # commas inside brackets separate options: mlp(depth=2,hidden=64)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def _seed_list(text: str) -> list[int]:
    try:
        return [int(t) for t in _comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers, got {text!r}") from None


def _integer_at_least(minimum: int, what: str):
    """An argparse type: an integer >= ``minimum``, described as ``what`` in errors."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


_positive = _integer_at_least(1, "a positive integer")
_non_negative = _integer_at_least(0, "a non-negative integer")


def _executor_from_args(args: argparse.Namespace, config):
    """The dask executor when asked for; ``None`` lets the study plan its local workers."""
    if args.executor == "local":
        if args.scheduler:
            raise UsageError("--scheduler needs --executor dask")
        return None
    from ..lab.dask_executor import DaskMissingError
    from ..lab.executors import make_executor

    try:
        return make_executor(
            config.workers, config.threads, kind="dask", scheduler=args.scheduler, retries=args.retries
        )
    except DaskMissingError as err:
        raise UsageError(str(err)) from None


def configure_compare(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "Examples: `actlab compare` (the default study); "
        "`actlab compare --task fashion_mnist --model cnn --activations relu,gelu,srs,aglu --epochs 5`; "
        "`actlab compare --activations 'relu,srs(alpha=5,beta=3)' --seeds 5 --test paired`. "
        "See docs/lab.md for the config file format."
    )
    what = p.add_argument_group("what to compare")
    what.add_argument("--task", type=_comma_list, metavar="NAME[,NAME]", help="task(s) (default: digits)")
    what.add_argument(
        "--model", type=_comma_list, metavar="NAME[,NAME]", help="model(s) (default: the task's default model)"
    )
    what.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model option, repeatable (e.g. hidden=128, channels=[16,32])",
    )
    what.add_argument(
        "--activations",
        metavar="LIST",
        help="comma list of registry names, each optionally with arguments: relu,gelu,'srs(alpha=5,beta=3)' "
        "(default: the registered seed activations plus relu, gelu, silu)",
    )
    what.add_argument("--baseline", metavar="NAME", help="activation the others are tested against (default: relu)")
    seeds = what.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=_positive, metavar="N", help="seeds 0..N-1 (default: 3)")
    seeds.add_argument("--seed-list", type=_seed_list, metavar="S[,S]", help="explicit seeds, e.g. 0,1,2")

    train = p.add_argument_group("training")
    train.add_argument("--epochs", type=_positive)
    train.add_argument("--batch-size", type=_positive)
    train.add_argument("--lr", type=float, help="learning rate")
    train.add_argument("--weight-decay", type=float, help="weight decay (never applied to activation parameters)")
    train.add_argument("--optimizer", choices=("adam", "adamw", "sgd"))
    train.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the gradient norm (default: off)")
    train.add_argument("--limit", type=_positive, metavar="N", help="use at most N training samples")
    train.add_argument("--data-dir", metavar="DIR", help="where datasets that are not bundled live")
    train.add_argument("--device", choices=("cpu", "cuda"))

    run = p.add_argument_group("execution and output")
    run.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="local: a process pool on this machine (default); dask: a Dask cluster (docs/cluster.md)",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --executor dask: an existing scheduler, e.g. tcp://10.0.0.5:8786 "
        "(default: start a local cluster on 127.0.0.1)",
    )
    run.add_argument(
        "--retries",
        type=_non_negative,
        default=2,
        metavar="N",
        help="with --executor dask: new attempts for a run whose worker died (default: 2)",
    )
    run.add_argument("--workers", type=_positive, metavar="N", help="parallel processes (default: CPU cores)")
    run.add_argument(
        "--threads", type=_positive, metavar="N", help="torch threads per worker (default: cores / workers)"
    )
    run.add_argument("--out", metavar="DIR", help="output folder (default: runs/<task>-<model>)")
    run.add_argument("--config", metavar="FILE", help="study file (.toml or .json); flags override it")
    run.add_argument("--test", choices=("welch", "paired", "wilcoxon"), help="significance test (default: welch)")
    run.add_argument("--retry-failed", action="store_true", help="run again the runs stored as failed")
    run.add_argument("--no-report", action="store_true", help="do not write report.md / report.html")
    run.add_argument("--quiet", action="store_true", help="no progress bars; one line per finished run")


def _study_from_args(args: argparse.Namespace):
    from ..lab.config import ConfigError, StudyConfig, load_config_file, parse_option

    try:
        base = load_config_file(args.config) if args.config else StudyConfig()
        options: dict[str, Any] = dict(parse_option(o) for o in args.model_option)
        overrides = {
            "tasks": args.task,
            "models": args.model,
            "activations": [args.activations] if args.activations is not None else None,
            "baseline": args.baseline,
            "seeds": list(range(args.seeds)) if args.seeds else args.seed_list,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "optimizer": args.optimizer,
            "grad_clip": args.grad_clip,
            "limit": args.limit,
            "data_dir": args.data_dir,
            "device": args.device,
            "workers": args.workers,
            "threads": args.threads,
            "out": args.out,
            "test": args.test,
        }
        config = base.merged(overrides)
        if options:
            # Options apply to the chosen models, or to each task's default model.
            models = [m.name for m in config.model_choices(config.models)] if config.models else None
            models = models or _default_models(config.tasks)
            config = config.merged({"model_options": {m: options for m in models}})
        config.validate()
    except ConfigError as err:
        raise UsageError(str(err)) from None
    return config


def _default_models(tasks: list[str]) -> list[str]:
    from ..lab.config import ConfigError
    from ..lab.models import default_model

    try:
        return list(dict.fromkeys(default_model(t) for t in tasks))
    except ValueError as err:
        raise ConfigError(str(err)) from None


class _Progress:
    """Progress bars on a terminal; otherwise (or with --quiet) one line per finished run."""

    def __init__(self, quiet: bool) -> None:
        self.bars = None
        self.total = 0
        self.finished = 0
        self.labels: dict[str, str] = {}
        self.run_bars: dict[str, Any] = {}
        self.free_slots: list[int] = []
        if not quiet and sys.stderr.isatty():
            try:
                import tqdm  # noqa: F401

                self.bars = True
            except ImportError:
                print("(install tqdm for progress bars: pip install 'actlab[lab]')", file=sys.stderr)

    def start(self, pending, skipped: int, workers: int) -> None:
        self.total = len(pending)
        self.labels = {s.config_hash(): s.label for s in pending}
        if self.bars:
            from tqdm import tqdm

            self.overall = tqdm(total=self.total, desc="runs", unit="run", position=0, dynamic_ncols=True)
            self.free_slots = list(range(1, workers + 1))

    def event(self, event) -> None:
        if not self.bars:
            return
        from tqdm import tqdm

        if event.kind == "start":
            self._close_bar(event.config_hash)  # a run started again (its Dask worker died)
            slot = self.free_slots.pop(0) if self.free_slots else None
            self.run_bars[event.config_hash] = (
                tqdm(
                    total=event.epochs,
                    desc=self.labels.get(event.config_hash, "run"),
                    unit="epoch",
                    position=slot,
                    leave=False,
                    dynamic_ncols=True,
                ),
                slot,
            )
        elif event.kind == "epoch" and event.config_hash in self.run_bars:
            bar = self.run_bars[event.config_hash][0]
            bar.update(event.epoch - bar.n)
            shown = {k[4:]: f"{v:.4g}" for k, v in event.metrics.items() if k.startswith("val_")}
            bar.set_postfix(shown, refresh=False)

    def result(self, spec, result, stored: bool) -> None:
        self.finished += 1
        self._close_bar(spec.config_hash())
        if result.ok:
            outcome = f"{result.metric}={result.test_value:.4f} (best epoch {result.best_epoch})"
        else:
            outcome = "FAILED: " + (result.error or "").strip().splitlines()[0]
        if not stored:
            outcome += " [already stored by another process]"
        line = f"[{self.finished}/{self.total}] {spec.label}: {outcome} in {result.total_time_s:.1f} s"
        if self.bars:
            self.overall.write(line, file=sys.stderr)
            self.overall.update(1)
        else:
            print(line, flush=True)

    def _close_bar(self, key: str) -> None:
        if key in self.run_bars:
            bar, slot = self.run_bars.pop(key)
            bar.close()
            if slot is not None:
                self.free_slots.append(slot)

    def close(self) -> None:
        if self.bars:
            for bar, _ in self.run_bars.values():
                bar.close()
            if hasattr(self, "overall"):
                self.overall.close()


def run_compare(args: argparse.Namespace) -> int:
    from ..lab.config import ConfigError
    from ..lab.executors import ExecutorError
    from ..lab.report import format_comparison
    from ..lab.store import StoreError
    from ..lab.study import run_study

    config = _study_from_args(args)
    executor = _executor_from_args(args, config)
    progress = _Progress(args.quiet)

    def on_start(pending, skipped: int, executor) -> None:
        where = f" ({executor.describe(len(pending))})" if executor is not None else ""
        print(f"{len(pending) + skipped} runs: {skipped} already stored, {len(pending)} to run{where}", flush=True)
        progress.start(pending, skipped, executor.workers if executor is not None else 1)

    started = time.perf_counter()
    try:
        outcome = run_study(
            config,
            executor=executor,
            retry_failed=args.retry_failed,
            on_start=on_start,
            on_event=progress.event,
            on_result=progress.result,
            report=not args.no_report,
            command="actlab " + shlex.join(args._argv),
        )
    except (ConfigError, StoreError) as err:
        raise UsageError(str(err)) from None
    except ExecutorError as err:
        print(f"actlab compare: error: {err}", file=sys.stderr)
        return 1
    finally:
        progress.close()
    elapsed = time.perf_counter() - started
    print()
    for table in outcome.tables:
        print(format_comparison(table))
        print()
    print(f"{outcome.executed} run(s) executed, {outcome.skipped} skipped, {outcome.failed} failed, in {elapsed:.1f} s")
    print(f"results: {outcome.out_dir / 'results.sqlite'}")
    if outcome.report:
        print(f"report:  {outcome.report[0]}  {outcome.report[1]}")
    return 0


def configure_results(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="output folder of `actlab compare` (or its results.sqlite)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default: table)")
    p.add_argument("--runs", action="store_true", help="with csv/json: one record per run instead of per activation")
    p.add_argument("--baseline", metavar="NAME", help="baseline activation (default: the study's)")
    p.add_argument("--test", choices=("welch", "paired", "wilcoxon"), help="significance test (default: the study's)")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--report", action="store_true", help="also rewrite report.md / report.html in DIR")


def run_results(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..lab.analysis import analyse
    from ..lab.config import ConfigError, parse_activation
    from ..lab.export import run_records, summary_records, to_csv, to_json
    from ..lab.report import atomic_write, format_comparison, write_report
    from ..lab.store import ResultStore, StoreError

    try:
        with ResultStore(args.dir, create=False) as store:
            runs = store.runs()
            study = store.get_meta("study", {}) or {}
            path = store.path
    except StoreError as err:
        raise UsageError(str(err)) from None
    if not runs:
        raise UsageError(f"{path} holds no finished run yet")
    try:
        baseline = parse_activation(args.baseline or study.get("baseline", "relu")).label
    except ConfigError as err:
        raise UsageError(str(err)) from None
    order = []
    for text in study.get("activations", []):
        try:
            order.append(parse_activation(text).label)
        except ConfigError:  # an activation no longer registered: order only, keep going
            pass
    tables = analyse(runs, baseline, args.test or study.get("test", "welch"), order)
    if args.format == "table":
        text = "\n\n".join(format_comparison(t) for t in tables) + "\n"
    else:
        records = run_records(runs) if args.runs else summary_records(tables)
        text = to_csv(records) if args.format == "csv" else to_json(records)
    if args.output:
        atomic_write(Path(args.output), text)
    else:
        sys.stdout.write(text)
    if args.report:
        md, html = write_report(path.parent, tables, command="actlab " + shlex.join(args._argv))
        print(f"report:  {md}  {html}", file=sys.stderr)
    return 0
