"""Named `blinker` signals announcing what the training loop does.

Each signal is sent with a single dict as its sender, so a receiver is a plain
function of one argument:

```python
from importance_sampling import signals

def log_weights(event):
    print(event["w"].mean())

signals.sample.connect(log_weights)
```

- `is.sample`: the batch chosen for a step. Keys: `idxs` (dataset indices),
  `xy` (their data), `w` (their weights), `predicted_scores` (their scores,
  an array of ones under uniform sampling).
- `is.score`: the scores of a set of candidates. Keys: `idxs`, `scores`.
- `is.training`: one train step. Keys: `loss`, `metrics` (the logs dict),
  `scores` (the per-sample scores observed in the step).
- `is.evaluate_batch`: one validation batch. Keys: `batch`, `logs`.
- `is.evaluation`: a whole validation pass. Keys: `logs`.
"""

from blinker import signal

sample = signal("is.sample")
score = signal("is.score")
training = signal("is.training")
evaluate_batch = signal("is.evaluate_batch")
evaluation = signal("is.evaluation")


def host_signals_received():
    """Whether anyone receives `is.sample`, `is.score` or `is.training`.

    Their payloads exist only when the batches are drawn on the host, which
    `fit` chooses when it starts.
    """
    return bool(sample.receivers or score.receivers or training.receivers)
