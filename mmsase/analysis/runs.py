"""Training runs of one config over blocks and seeds, each leaving a result file.

Every run is an ordinary training: ``tools/train.py``'s config preparation
(:func:`mmsase.utils.launch.prepare_config`), then mmengine's ``Runner``, in worker processes
(``jobs`` of them, started fresh, so that runs in parallel share nothing and a failed one
takes nothing down; a worker trains its runs one after another, each under an experiment name
of its own).
A finished run writes ``result.json`` atomically in its folder; a later call skips runs whose
file is there, so a stopped comparison resumes where it stopped. A run that was stopped
before its file was written starts again from scratch.
"""
import copy
import json
import os
import os.path as osp
import sys
import time
from argparse import Namespace
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from typing import Callable, List, Optional

RESULT_FILE = 'result.json'
ALPHA_KEY = 'architecture.alpha'
TIMER_KEYS = ('val/time', 'val/data_time')  # the IterTimerHook's, not metrics


@dataclass
class RunSpec:
    """One training: ``config`` with seed ``seed`` in ``work_dir``.

    ``attention`` replaces ``model.backbone.attention`` when ``set_attention`` is true (None:
    no block); ``epochs`` replaces ``train_cfg.max_epochs`` and the schedulers' ends;
    ``complexity`` counts the trained model's parameters and FLOPs on one input.
    """
    label: str
    seed: int
    config: str
    work_dir: str
    attention: Optional[dict] = None
    set_attention: bool = False
    epochs: Optional[int] = None
    cfg_options: dict = field(default_factory=dict)
    complexity: bool = True

    @property
    def result_file(self) -> str:
        return osp.join(self.work_dir, RESULT_FILE)

    def settings(self) -> dict:
        """What makes two runs the same run (recorded in, and checked against, its file)."""
        settings = asdict(self)
        del settings['work_dir']
        settings['config'] = osp.abspath(self.config)
        return settings


def load_result(spec: RunSpec) -> Optional[dict]:
    """The result of a finished run, None if it has not finished. A file written by a run
    with other settings is an error (a work dir holds one comparison)."""
    if not osp.isfile(spec.result_file):
        return None
    with open(spec.result_file) as f:
        result = json.load(f)
    expected = json.loads(json.dumps(spec.settings()))  # tuples become lists, as in the file
    if result.get('settings') != expected:
        raise ValueError(f'{spec.result_file} was written by a run with other settings '
                         f'({result.get("settings")}; now {expected}): use another --work-dir '
                         'or delete the file')
    return result


def set_epochs(cfg, epochs: int) -> None:
    """``epochs`` training epochs: ``train_cfg.max_epochs`` and every scheduler ``T_max`` /
    ``end`` equal to the old number of epochs."""
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs

    def visit(node):
        if isinstance(node, dict):
            for key in ('T_max', 'end'):
                if node.get(key) == old:
                    node[key] = epochs
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)

    visit(cfg.get('param_scheduler'))


def build_config(spec: RunSpec):
    """The run's config: tools/train.py's preparation, then the run's block, epochs and seed.
    Validation runs once, after the last epoch (its metrics are the run's result)."""
    from mmsase.utils.launch import prepare_config
    args = Namespace(config=spec.config, cfg_options=copy.deepcopy(spec.cfg_options) or None,
                     genotype=None, connection_code=None, launcher='none',
                     work_dir=spec.work_dir, amp=False, local_rank=0)
    cfg = prepare_config(args)
    if spec.set_attention:
        cfg.model.backbone.attention = copy.deepcopy(spec.attention)
    if spec.epochs is not None:
        set_epochs(cfg, spec.epochs)
    cfg.train_cfg.val_interval = cfg.train_cfg.max_epochs
    cfg.randomness = dict(cfg.get('randomness', None) or {}, seed=spec.seed)
    # the Runner's logger and message hub are per experiment name (by default the second it
    # started): a name of its own keeps a worker's consecutive runs apart
    cfg.experiment_name = f'{osp.basename(osp.dirname(spec.work_dir))}_seed{spec.seed}'
    return cfg


def final_metrics(runner) -> dict:
    """The metrics of the validation after the last epoch (from the message hub)."""
    scalars = runner.message_hub.log_scalars
    metrics = {key[len('val/'):]: float(scalars[key].current()) for key in scalars
               if key.startswith('val/') and key not in TIMER_KEYS}
    return metrics or {k: float(v) for k, v in runner.val().items()}


def complexity(model, dataloader) -> dict:
    """Parameters of ``model`` and GFLOPs of its forward on the first input of
    ``dataloader``."""
    import torch

    from .complexity import count_flops, count_params
    model.eval()
    data = model.data_preprocessor(next(iter(dataloader)), False)
    inputs = data['inputs'][:1]

    def forward():
        with torch.inference_mode():
            model(inputs, mode='tensor')

    return dict(params=count_params(model), gflops=count_flops(forward) / 1e9,
                input_shape=list(inputs.shape[1:]))


def train_one(spec: RunSpec, threads: int, log_file: Optional[str] = None) -> dict:
    """Train ``spec`` here; write and return its result. With ``log_file`` this process's
    output (the Runner's log) goes there."""
    os.makedirs(spec.work_dir, exist_ok=True)
    if log_file is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
    import torch
    from mmengine.model import is_model_wrapper
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    import mmsase.engine  # noqa: F401  (as tools/train.py)
    from mmsase.utils.atomic_io import atomic_write
    torch.set_num_threads(threads)
    cfg = build_config(spec)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    start = time.time()
    runner.train()
    result = dict(settings=spec.settings(), metrics=final_metrics(runner),
                  train_seconds=time.time() - start, threads=threads)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    alpha = [v for k, v in model.state_dict().items()
             if k == ALPHA_KEY or k.endswith('.' + ALPHA_KEY)]
    if alpha:
        result['alpha'] = alpha[0].tolist()
    if spec.complexity:
        result.update(complexity(model, runner.val_dataloader))
    atomic_write(spec.result_file, json.dumps(result, indent=2))
    return result


def _train_in_child(spec: RunSpec, threads: int) -> dict:
    return train_one(spec, threads, log_file=osp.join(spec.work_dir, 'train.log'))


def finish_run_args(parser, args, kind: str) -> None:
    """What the run tools check of their parsed arguments: the seeds are distinct (a
    repeated seed would reuse one run's result), and ``args.work_dir`` defaults to
    ``work_dirs/<kind>/<config's stem>``."""
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds repeats a seed: {args.seeds}')
    if args.work_dir is None:
        stem = osp.splitext(osp.basename(args.config))[0]
        args.work_dir = osp.join('work_dirs', kind, stem)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_all(specs: List[RunSpec], jobs: int = 1, threads: Optional[int] = None,
            echo: Callable[[str], None] = print) -> List[dict]:
    """Results of ``specs`` in their order: finished runs read from their files, the others
    trained, ``jobs`` at a time, each process with ``threads`` torch threads (default: the
    cores shared out among the jobs)."""
    if jobs < 1:
        raise ValueError(f'--jobs must be >= 1, got {jobs}')
    results = [load_result(spec) for spec in specs]
    pending = [i for i, result in enumerate(results) if result is None]
    jobs = min(jobs, max(1, len(pending)))
    threads = threads or max(1, available_cores() // jobs)
    done = len(specs) - len(pending)
    if done:
        echo(f'{done} of {len(specs)} runs already finished (skipped): '
             + ', '.join(f'{s.label}/seed {s.seed}' for s, r in zip(specs, results) if r))
    if not pending:
        return results
    echo(f'training {len(pending)} runs, {jobs} at a time with {threads} torch thread(s) each')
    failures = []
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context('spawn')) as pool:
        futures = {pool.submit(_train_in_child, specs[i], threads): i for i in pending}
        for future in as_completed(futures):
            i = futures[future]
            spec, done = specs[i], done + 1
            log = osp.join(spec.work_dir, 'train.log')
            try:
                results[i] = future.result()
            except Exception as e:  # keep the other runs going; report at the end
                failures.append(f'{spec.label}/seed {spec.seed}: {type(e).__name__}: {e} '
                                f'(log: {log})')
                echo(f'[{done}/{len(specs)}] {spec.label} seed {spec.seed}: FAILED ({log})')
                continue
            top1 = results[i]['metrics'].get('accuracy/top1')
            echo(f'[{done}/{len(specs)}] {spec.label} seed {spec.seed}: '
                 + (f'top-1 {top1:.2f} %, ' if top1 is not None else '')
                 + f'{results[i]["train_seconds"]:.0f} s')
    if failures:
        raise RuntimeError('some runs failed (the finished ones are kept; rerun to retry):\n  '
                           + '\n  '.join(failures))
    return results
