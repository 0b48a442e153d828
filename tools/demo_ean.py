"""The EAN stage of the demo (``python tools/demo.py --only ean``): where to plug a shared SE.

1. **Supernet** (configs/demo/ean_supernet_resnet20_se_digits.py): ResNet-20 on the digits with
   one SE per stage shared by its blocks, trained under a random connection code per iteration
   (``RandomConnectionCodeHook``) on 3/4 of the training images.
2. **Search** (tools/ean_search.py): the REINFORCE controller, rewarded with the frozen supernet's
   top-1 on the held-out 1/4 + 2 · unplugged fraction; writes best_code.json and
   plug_probabilities.png.
3. **Retrain** from scratch on the whole training set: plain ResNet-20, all 9 blocks plugged and
   the searched code (configs/demo/ean_resnet20_se_digits.py, ``--connection-code``); prints
   top-1, parameters and eval latency (batch 1 and 8, this machine's CPU).

The demo's ``--search-epochs`` sets the supernet's epochs and ``--train-epochs`` the retraining's
(6 each by default); the search takes 50 controller steps.
"""
import json
import os
import os.path as osp
import statistics
import time
import warnings

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SUPERNET = osp.join(ROOT, 'configs/demo/ean_supernet_resnet20_se_digits.py')
RETRAIN = osp.join(ROOT, 'configs/demo/ean_resnet20_se_digits.py')
PLAIN = osp.join(ROOT, 'configs/demo/cifar_resnet20_digits.py')


def epochs_options(epochs):
    return ['--cfg-options', f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs}',
            f'param_scheduler.T_max={epochs}']


def measure(models, batch_sizes=(1, 8), rounds=30):
    """Parameters and median eval milliseconds per batch size of each ``(config, code file)``
    model, timed round-robin (one call of each model per round) on random weights."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    from mmsase.models.ean.code import ConnectionCode
    init_default_scope('mmpretrain')
    built = []
    with warnings.catch_warnings():  # the pkg_resources notice of the configs' imports
        warnings.simplefilter('ignore', UserWarning)
        for config, code_file in models:
            cfg = Config.fromfile(config)
            if code_file is not None:
                code = ConnectionCode.load(code_file)
                cfg.model.backbone.connection_code = code.to_string('-')
            built.append(MODELS.build(cfg.model).eval())
    times = {(i, b): [] for i in range(len(built)) for b in batch_sizes}
    with torch.inference_mode():
        for batch in batch_sizes:
            inputs = torch.randn(batch, 3, 32, 32)
            for model in built:  # warm-up
                model(inputs, mode='tensor')
            for _ in range(rounds):
                for i, model in enumerate(built):
                    start = time.perf_counter()
                    model(inputs, mode='tensor')
                    times[i, batch].append(1000 * (time.perf_counter() - start))
    return [(sum(p.numel() for p in model.parameters()),
             [statistics.median(times[i, b]) for b in batch_sizes])
            for i, model in enumerate(built)]


def ean(work_dir, run, last_metric, supernet_epochs=6, search_steps=50, train_epochs=6):
    """Run the three steps with the demo's ``run(args, log_file)`` and ``last_metric``."""
    out = osp.join(work_dir, 'ean')
    os.makedirs(out, exist_ok=True)
    print('\n[EAN 1/3] supernet: ResNet-20 + one shared SE per stage, a random connection code '
          'per iteration (digits, 3/4 of the training images)')
    run(['tools/train.py', SUPERNET, '--work-dir', osp.join(out, 'supernet'),
         *epochs_options(supernet_epochs)], osp.join(out, 'supernet.log'))
    checkpoint = osp.join(out, 'supernet', f'epoch_{supernet_epochs}.pth')

    print(f'\n[EAN 2/3] controller search: {search_steps} REINFORCE steps, 3 codes each, '
          'rewarded on the held-out 1/4')
    search_dir = osp.join(out, 'search')
    run(['tools/ean_search.py', SUPERNET, checkpoint, '--work-dir', search_dir,
         '--steps', str(search_steps)], osp.join(out, 'search.log'))
    best_file = osp.join(search_dir, 'best_code.json')
    with open(best_file) as f:
        best = json.load(f)
    with open(osp.join(search_dir, 'search_log.json')) as f:
        last = json.load(f)[-1]
    print(f'  searched code (highest reward seen): {best["code"]} ({best["plugged"]} of '
          f'{len(best["code"])} blocks plugged; held-out top-1 {best["heldout_top1"]:.2f}%, '
          f'step {best["step"]}); most likely at the end: {last["most_likely"]}')
    print(f'  plot: {osp.relpath(osp.join(search_dir, "plug_probabilities.png"), ROOT)}')

    print('\n[EAN 3/3] retrain from scratch on the whole training set: plain vs all plugged vs '
          'the searched code')
    runs = [('plain ResNet-20', PLAIN, None),
            ('shared SE, all plugged', RETRAIN, None),
            (f'shared SE, searched {best["code"]}', RETRAIN, best_file)]
    accuracies = []
    for index, (name, config, code_file) in enumerate(runs):
        extra = [] if code_file is None else ['--connection-code', code_file]
        tag = ('plain', 'all_plugged', 'searched')[index]
        text = run(['tools/train.py', config, *extra, '--work-dir', osp.join(out, tag),
                    *epochs_options(train_epochs)], osp.join(out, f'{tag}.log'))
        accuracies.append(last_metric(text, 'accuracy/top1'))
    costs = measure([(config, code_file) for _, config, code_file in runs])
    width = max(len(name) for name, _, _ in runs) + 2
    print(f'\n  {"model":<{width}}{"top-1 (%)":>10}{"params":>10}{"ms b=1":>9}{"ms b=8":>9}')
    for (name, _, _), acc, (params, ms) in zip(runs, accuracies, costs):
        print(f'  {name:<{width}}{acc:>10.2f}{params:>10,}{ms[0]:>9.2f}{ms[1]:>9.2f}')
    print('  (eval latency: median of 30 calls, random inputs, this CPU; the shared modules '
          'cost the same parameters whatever the code, plugging fewer blocks saves time)')
