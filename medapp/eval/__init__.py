"""`medapp eval`: reproduce the published Dragonfly-Med benchmark numbers on a site's own copy of the datasets.

A hospital that deploys a model has to show that the copy it runs (its checkpoint, its quantisation, its hardware)
answers as well as the paper says. This package is that evidence, in small modules with one job each:

* `datasets`  — read VQA-RAD, SLAKE and Path-VQA from a local folder (never downloaded) into `Question`s.
* `normalize`, `metrics` — the `strict` rule (ours, every question counted); `llava_med` — LLaVA-Med v1.0.0's
  rules reproduced, quirks included, so numbers compare with papers that used them. Pure functions.
* `scoring`   — one rule applied to a dataset and a predictions file: totals, per-category breakdowns.
* `predictions` — the answer file (LLaVA-Med's JSONL form), appended and fsynced per question for resume.
* `answer`    — batched greedy answers through the engine; `run` — the resumable run over a dataset.
* `published`, `report`, `chart`, `provenance`, `compare` — what a reviewer reads.

Nothing here imports torch at module level: `import medapp.eval` stays cheap, the model loads inside `run`.
"""

RULES = ("strict", "llava-med")
DATASETS = ("vqa-rad", "slake", "path-vqa")
