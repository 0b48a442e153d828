"""EAN's controller search on a frozen supernet: rewards, logs, resumable state, outputs.

EAN (Efficient Attention Network; authors' code gbup-group/EAN-efficient-attention-network,
``search_imagent/EAN_search.py``) scores every sampled connection code with the supernet trained
under random codes, frozen in eval mode (BN running statistics):
``R = top-1 (%) on a held-out split + λ · fraction of blocks unplugged − offset`` (λ = 2,
offset = 54), and trains the controller with :class:`~mmsase.models.ean.reinforce.EANReinforce`.
The held-out split is part of the *training* set the supernet did not see (ImageNet: the first
100 images of each class; CIFAR: a seeded split).

:class:`EANSearchRun` runs the steps and, in its work dir, keeps

* ``search_state.pth``: controller, optimizers, baseline, replay buffer, RND nets, random state,
  history, accuracy cache; written atomically after every step, so a resumed search continues
  exactly as an uninterrupted one (same codes, same controller);
* ``best_code.json``: the code with the highest reward seen (without the novelty bonus), and
  ``most_likely_code.json``: the controller's most likely code now; both
  :meth:`ConnectionCode.save` files (``--connection-code``);
* ``search_log.json``: one record per step; ``plug_probabilities.png``: the plug probability of
  every block over the steps (heat map) above the rewards and the baseline.

Several ranks (``torchrun --nproc_per_node=8 tools/ean_search.py CONFIG CKPT --launcher
pytorch``): scoring a code is the whole cost of the search (ImageNet's held-out split is 100k
images; the authors' ``EAN_search.py`` scores it in one process, ``nn.DataParallel`` over the
GPUs of one node), so every rank scores its shard of the split (:func:`build_heldout_dataloader`:
each image on exactly one rank) and :func:`heldout_top1` sums the counts over the ranks before
dividing: every rank gets the top-1 one process would get on the whole split. The rest is
replicated, not communicated: the controller, its optimizer, the RND nets and the generator of
the codes and replay draws are all seeded from ``seed`` alone
(:class:`~mmsase.models.ean.reinforce.EANReinforce`), so with the same rewards every rank
samples the same codes and takes the same controller step. Each step checks that the ranks drew
the same codes (a divergence would otherwise pair one rank's scoring with another's and hang or
mix them). Only rank 0 writes the work dir's files; with ``--resume`` every rank loads
``search_state.pth`` (from a work dir they share) once rank 0 is done writing.
"""
import copy
import io
import json
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmengine.dist import all_gather, all_reduce, barrier, get_world_size, is_main_process

from mmsase.models.ean.code import ConnectionCode
from mmsase.models.ean.controller import ConnectionController
from mmsase.models.ean.reinforce import EANReinforce
from mmsase.utils.atomic_io import atomic_write
from mmsase.utils.checkpoint import load_checkpoint_file

__all__ = ['SEARCH_DEFAULTS', 'EANSearchRun', 'heldout_top1', 'build_heldout_dataloader',
           'code_reward', 'plot_plug_probabilities']

#: The ``ean_search`` config keys besides ``heldout_dataloader``, the authors' values.
SEARCH_DEFAULTS = dict(
    steps=300, codes_per_step=3, temperature=5.0, controller_mlp=(20, 50), lr=5e-2,
    optimizer='Adam', baseline_decay=0.95, reward_lambda=2.0, reward_offset=54.0, rnd=True,
    replay=True, replay_start=10, replay_buffer=30, seed=0, plot_interval=10)
# settings that may change between a search and its resumption
_RESUMABLE = ('steps', 'plot_interval')

STATE_FILE = 'search_state.pth'


def code_reward(accuracy: float, code: ConnectionCode, reward_lambda: float,
                reward_offset: float) -> float:
    """``top-1 (%) + λ · fraction unplugged − offset`` (authors: λ = 2, offset = 54)."""
    return accuracy + reward_lambda * code.fraction_unplugged - reward_offset


@torch.no_grad()
def heldout_top1(model, dataloader) -> float:
    """Top-1 (%) of an mmpretrain classifier (in its current mode) on ``dataloader``.

    Under several ranks every rank passes its shard (:func:`build_heldout_dataloader`) and the
    counts of correct and seen images are summed over the ranks (``mmengine.dist.all_reduce``)
    before dividing, so every rank returns what one process gets on the whole split; a mean of
    per-rank accuracies would weigh the shards' images unequally when their sizes differ. The
    summed count must be the dataset's size: a sampler that pads the shards (mmengine's
    ``DefaultSampler`` with ``round_up=True``) or drops a last batch would count some images
    twice or not at all.
    """
    correct = total = 0
    for data in dataloader:
        data = model.data_preprocessor(data, False)
        scores = model(data['inputs'], data['data_samples'], mode='tensor')
        if isinstance(scores, (tuple, list)):
            scores = scores[-1]
        labels = torch.cat([sample.gt_label for sample in data['data_samples']])
        correct += int((scores.argmax(dim=1).cpu() == labels.cpu()).sum())
        total += labels.numel()
    world_size = get_world_size()
    if world_size > 1:
        counts = torch.tensor([correct, total], dtype=torch.int64)
        all_reduce(counts, op='sum')  # every rank calls it, even with an empty shard
        correct, total = counts.tolist()
        dataset = getattr(dataloader, 'dataset', None)
        size = len(dataset) if hasattr(dataset, '__len__') else None
        if size is not None and total != size:
            raise ValueError(
                f'the {world_size} ranks scored {total} held-out images, the held-out dataset '
                f'has {size}: its sampler pads or drops images (build the loader with '
                'build_heldout_dataloader: DefaultSampler with round_up=False, no drop_last)')
    if total == 0:
        raise ValueError('the held-out data loader of the EAN search yielded no samples')
    return 100.0 * correct / total


def build_heldout_dataloader(loader_cfg: dict, seed: int = 0):
    """The data loader of ``ean_search.heldout_dataloader`` (mmengine's
    ``Runner.build_dataloader``), sharded over the ranks so that each image is on exactly one.

    mmengine's ``DefaultSampler`` rounds the split up to a multiple of the world size by
    repeating its first images (``round_up=True``, its default, which validation loops put up
    with); here it gets ``round_up=False``: rank ``r`` of ``w`` takes images ``r, r + w, ...``,
    shards one image apart in size that together are the split. With one process that is the
    whole split, in order, as before. Other samplers are refused under several ranks, where
    their sharding could not be checked before the search starts (:func:`heldout_top1` checks
    the count after every scoring anyway).
    """
    from mmengine.runner import Runner
    cfg = copy.deepcopy(dict(loader_cfg))
    sampler = dict(cfg.get('sampler') or dict(type='DefaultSampler', shuffle=False))
    kind = sampler.get('type', 'DefaultSampler')
    name = kind.__name__ if isinstance(kind, type) else str(kind).split('.')[-1]
    if name == 'DefaultSampler':
        sampler['round_up'] = False
    elif get_world_size() > 1:
        raise ValueError(f'ean_search.heldout_dataloader.sampler is a {name}: under several '
                         'ranks the held-out split is sharded with DefaultSampler '
                         '(round_up=False), each image on exactly one rank')
    cfg['sampler'] = sampler
    return Runner.build_dataloader(cfg, seed=seed)


class EANSearchRun:
    """The controller search in ``work_dir`` (see the module docstring).

    Args:
        work_dir (str): where the state, the codes, the log and the plot go.
        accuracy (callable): ``ConnectionCode → top-1 (%)`` of the frozen supernet on the
            held-out split; called once per distinct code (the results are cached).
        stage_blocks (sequence of int): residual blocks per stage of the supernet.
        settings (dict): :data:`SEARCH_DEFAULTS` keys (missing ones take the defaults).
        log (callable): where the per-step lines go (default: ``print``).
    """

    def __init__(self, work_dir: str, accuracy: Callable[[ConnectionCode], float],
                 stage_blocks: Sequence[int], settings: Optional[dict] = None,
                 log: Callable[[str], None] = print):
        unknown = sorted(set(settings or {}) - set(SEARCH_DEFAULTS))
        if unknown:
            raise ValueError(f'unknown ean_search settings {unknown}; known: '
                             f'{sorted(SEARCH_DEFAULTS)} and heldout_dataloader')
        self.settings = dict(SEARCH_DEFAULTS, **(settings or {}))
        if self.settings['controller_mlp'] is not None:
            self.settings['controller_mlp'] = tuple(self.settings['controller_mlp'])
        self.work_dir = work_dir
        self.accuracy = accuracy
        self.stage_blocks = tuple(stage_blocks)
        self.log = log
        s = self.settings
        controller = ConnectionController(sum(self.stage_blocks), s['temperature'],
                                          mlp=s['controller_mlp'], seed=s['seed'])
        self.search = EANReinforce(
            controller, codes_per_step=s['codes_per_step'], lr=s['lr'],
            optimizer=s['optimizer'], baseline_decay=s['baseline_decay'], rnd=s['rnd'],
            replay=s['replay'], replay_start=s['replay_start'], replay_buffer=s['replay_buffer'],
            seed=s['seed'])
        self.cache: Dict[str, float] = {}  # code string -> held-out top-1 (%)
        self.history: List[dict] = []
        self.best: Optional[dict] = None

    # -- one step ---------------------------------------------------------------------------
    def code(self, bits) -> ConnectionCode:
        return ConnectionCode.parse(''.join(str(int(b)) for b in bits), self.stage_blocks)

    def _score(self, codes: torch.Tensor, scored: list) -> torch.Tensor:
        if get_world_size() > 1:
            # the ranks draw the same codes from identically seeded generators; should they
            # ever not (another CPU's last bit in a softmax), one rank would score a code
            # while another finds it in the cache, pairing their all-reduces wrongly or
            # hanging. One small all-gather per step turns that into an error on every rank.
            drawn = all_gather(codes)
            if any(not torch.equal(other, drawn[0]) for other in drawn[1:]):
                raise RuntimeError(
                    f'step {self.search.num_steps + 1}: the ranks drew different codes '
                    f'{[c.tolist() for c in drawn]}; their controllers have diverged')
        rewards = []
        for bits in codes.tolist():
            code = self.code(bits)
            key = code.to_string()
            if key not in self.cache:
                self.cache[key] = float(self.accuracy(code))
            reward = code_reward(self.cache[key], code, self.settings['reward_lambda'],
                                 self.settings['reward_offset'])
            scored.append((code, self.cache[key], reward))
            rewards.append(reward)
        return torch.tensor(rewards, dtype=torch.float64)

    def step(self) -> dict:
        scored = []
        record = self.search.step(lambda codes: self._score(codes, scored))
        controller = self.search.controller
        with torch.no_grad():
            probabilities = controller.probabilities().tolist()
            entropy = float(controller.entropy())
        entry = dict(
            step=record['step'] + 1, codes=[c.to_string() for c, _, _ in scored],
            accuracies=[a for _, a, _ in scored], rewards=[r for _, _, r in scored],
            bonus=record['bonus'], baseline=record['baseline'], loss=record['loss'],
            replay_loss=record['replay_loss'], entropy=entropy,
            plug_probabilities=probabilities,
            most_likely=self.code(controller.most_likely()).to_string())
        self.history.append(entry)
        for code, accuracy, reward in scored:
            if self.best is None or reward > self.best['reward']:
                self.best = dict(code=code.to_string(), reward=reward, accuracy=accuracy,
                                 step=entry['step'])
        return entry

    def format(self, entry: dict) -> str:
        sep = '-'
        codes = ', '.join(f'{self.code(c).to_string(sep)} {a:.2f}%'
                          for c, a in zip(entry['codes'], entry['accuracies']))
        bonus = '' if entry['bonus'] is None else f' (+ novelty {entry["bonus"]:.3f})'
        return (f'step {entry["step"]}/{self.settings["steps"]}: codes [{codes}] rewards '
                f'[{", ".join(f"{r:.3f}" for r in entry["rewards"])}]{bonus} baseline '
                f'{entry["baseline"]:.3f} entropy {entry["entropy"]:.3f} most likely '
                f'{self.code(entry["most_likely"]).to_string(sep)}')

    # -- the run ----------------------------------------------------------------------------
    def run(self, steps: Optional[int] = None) -> dict:
        """Step until ``steps`` (default: the settings') steps are done; return the best."""
        steps = self.settings['steps'] if steps is None else steps
        self.settings['steps'] = steps
        while self.search.num_steps < steps:
            entry = self.step()
            self.log(self.format(entry))
            self.save()
            if entry['step'] % self.settings['plot_interval'] == 0 or entry['step'] == steps:
                self.plot()
        if not self.history:
            self.log(f'the search has already done {self.search.num_steps} steps')
        else:
            self.plot()
        return self.best

    def save(self) -> None:
        """The state (atomically), both codes and the log; only on rank 0 (the other ranks
        hold the same search)."""
        if not is_main_process():
            return
        state = dict(search=self.search.state_dict(), history=self.history, cache=self.cache,
                     best=self.best, settings=self.settings, stage_blocks=self.stage_blocks)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write(osp.join(self.work_dir, STATE_FILE), buffer.getvalue())
        best = self.code(self.best['code'])
        best.save(osp.join(self.work_dir, 'best_code.json'), source='ean_search',
                  rule='highest reward seen', reward=self.best['reward'],
                  heldout_top1=self.best['accuracy'], step=self.best['step'])
        likely = self.code(self.history[-1]['most_likely'])
        likely.save(osp.join(self.work_dir, 'most_likely_code.json'), source='ean_search',
                    rule='most likely code of the controller', step=self.search.num_steps,
                    heldout_top1=self.cache.get(likely.to_string()))
        atomic_write(osp.join(self.work_dir, 'search_log.json'),
                     json.dumps(self.history, indent=1) + '\n')

    def resume(self) -> bool:
        """Load ``search_state.pth`` from the work dir if there is one; return whether.

        Every rank loads it (from a work dir they share), after rank 0 is done writing it;
        ranks that would continue from different states (a work dir not shared between the
        nodes) stop with an error.
        """
        distributed = get_world_size() > 1
        if distributed:
            barrier()  # rank 0 may still be saving the last step of a run in this process
        resumed = self._load_state()
        if distributed:
            steps = torch.tensor([int(resumed), self.search.num_steps], dtype=torch.int64)
            ranks = all_gather(steps)  # also a barrier: rank 0 saves again only after this
            if any(not torch.equal(other, ranks[0]) for other in ranks[1:]):
                raise RuntimeError(
                    f'the ranks resume from different states (found, steps done): '
                    f'{[tuple(r.tolist()) for r in ranks]}; the work dir '
                    f'{self.work_dir} must be one that all ranks share')
        return resumed

    def _load_state(self) -> bool:
        path = osp.join(self.work_dir, STATE_FILE)
        if not osp.isfile(path):
            return False
        state = load_checkpoint_file(path, map_location='cpu')
        if tuple(state['stage_blocks']) != self.stage_blocks:
            raise ValueError(f'{path} is a search over stages of {state["stage_blocks"]} '
                             f'blocks; this supernet has {self.stage_blocks}')
        saved = dict(state['settings'])
        if saved.get('controller_mlp') is not None:
            saved['controller_mlp'] = tuple(saved['controller_mlp'])
        changed = sorted(k for k in SEARCH_DEFAULTS
                         if k not in _RESUMABLE and saved.get(k) != self.settings[k])
        if changed:
            raise ValueError(f'{path} was searched with other settings: ' + ', '.join(
                f'{k}={saved.get(k)!r} (now {self.settings[k]!r})' for k in changed))
        self.search.load_state_dict(state['search'])
        self.history = list(state['history'])
        self.cache = dict(state['cache'])
        self.best = state['best']
        return True

    def plot(self) -> None:
        if not is_main_process():
            return
        png = plot_plug_probabilities(self.history, self.stage_blocks)
        atomic_write(osp.join(self.work_dir, 'plug_probabilities.png'), png)


def plot_plug_probabilities(history: List[dict], stage_blocks: Sequence[int]) -> bytes:
    """PNG bytes: a blocks × steps heat map of the plug probability (blocks named
    ``stage.block`` from 1.1, stages separated by lines) above the rewards and the baseline."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = [entry['step'] for entry in history]
    blocks = sum(stage_blocks)
    height = 3 + 0.25 * blocks
    figure = Figure(figsize=(10, height), dpi=100)
    FigureCanvasAgg(figure)
    heat, curve = figure.subplots(2, 1, sharex=True,
                                  gridspec_kw=dict(height_ratios=[max(blocks, 4) / 4, 1.5]))
    probabilities = torch.tensor([entry['plug_probabilities'] for entry in history]).t()
    image = heat.imshow(probabilities.numpy(), aspect='auto', cmap='viridis', vmin=0, vmax=1,
                        interpolation='nearest',
                        extent=(steps[0] - 0.5, steps[-1] + 0.5, blocks - 0.5, -0.5))
    labels = [f'{stage + 1}.{block + 1}' for stage, n in enumerate(stage_blocks)
              for block in range(n)]
    heat.set_yticks(range(blocks), labels, fontsize=7)
    for boundary in torch.tensor(stage_blocks).cumsum(0)[:-1].tolist():
        heat.axhline(boundary - 0.5, color='white', linewidth=1)
    heat.set_ylabel('block (stage.block)')
    flat, likely = history[-1]['most_likely'], []
    for n in stage_blocks:
        likely.append(flat[:n])
        flat = flat[n:]
    likely = '-'.join(likely)
    heat.set_title(f'EAN search: plug probability per block (now most likely: {likely})')
    figure.colorbar(image, ax=heat, label='P(plug)', pad=0.01)
    rewards = [max(entry['rewards']) for entry in history]
    mean_rewards = [sum(entry['rewards']) / len(entry['rewards']) for entry in history]
    curve.plot(steps, mean_rewards, label='mean reward of the step', linewidth=1)
    curve.plot(steps, rewards, label='best reward of the step', linewidth=0.8, alpha=0.6)
    bonus = '' if history[-1]['bonus'] is None else ' of rewards + novelty bonus'
    curve.plot(steps, [entry['baseline'] for entry in history], label=f'baseline (EMA{bonus})',
               linewidth=1.2)
    curve.set_xlabel('step')
    curve.set_ylabel('reward')
    curve.grid(alpha=0.3)
    curve.legend(fontsize=7, loc='lower right')
    # the colour bar takes room from the heat map only; keep the curve's x axis aligned
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.5 / height, top=1 - 0.35 / height,
                           hspace=0.08)
    heat_box, curve_box = heat.get_position(), curve.get_position()
    curve.set_position([curve_box.x0, curve_box.y0, heat_box.width, curve_box.height])
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png')
    return buffer.getvalue()
