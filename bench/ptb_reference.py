#!/usr/bin/env python3
"""PyTorch (Python) reference for PTB small: the same model, batching, loss scale and
optimizer as `distrnn train --flagfile=configs/ptb_small.flags`, timed per step.

  python bench/ptb_reference.py --data_dir ../shared/data --steps 300 --threads 2

Prints one JSON object: ms per step (median after warm-up), tokens/s, the last step's loss
and the mean loss of the last 20 steps (launch/bench.sh compare checks it against distrnn's).
"""
import argparse, json, os, statistics, time

import torch
import torch.nn as nn


def read_ptb(path, vocab=None):
    with open(path) as f:
        words = f.read().replace("\n", " <eos> ").split()
    if vocab is None:
        counts = {}
        for w in words:
            counts[w] = counts.get(w, 0) + 1
        vocab = {w: i for i, (w, _) in enumerate(sorted(counts.items(), key=lambda x: (-x[1], x[0])))}
    return torch.tensor([vocab[w] for w in words], dtype=torch.long), vocab


class Model(nn.Module):
    def __init__(self, vocab, hidden, layers, init):
        super().__init__()
        self.embedding = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers)
        self.decoder = nn.Linear(hidden, vocab)
        for p in self.parameters():
            nn.init.uniform_(p, -init, init)

    def forward(self, x, state):
        out, state = self.lstm(self.embedding(x), state)
        return self.decoder(out), state


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data_dir", default="../shared/data")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    data, vocab = read_ptb(os.path.join(args.data_dir, "ptb", "ptb.train.txt"))
    batch, steps = 20, 20
    cols = data.numel() // batch
    matrix = data[: cols * batch].view(batch, cols).t().contiguous()  # [L, B] time-major
    model = Model(len(vocab), 200, 2, 0.1)
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    state = None
    times, losses = [], []
    for i in range(args.steps):
        start = time.perf_counter()
        x = matrix[i * steps:(i + 1) * steps]
        y = matrix[i * steps + 1:(i + 1) * steps + 1]
        if state is not None:
            state = tuple(s.detach() for s in state)
        logits, state = model(x, state)
        nll = nn.functional.cross_entropy(logits.view(-1, len(vocab)), y.reshape(-1), reduction="sum")
        sgd.zero_grad(set_to_none=False)
        (nll / batch).backward()  # Zaremba: sum over steps, mean over batch
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        sgd.step()
        losses.append(nll.item() / (batch * steps))
        times.append(time.perf_counter() - start)
    ms = statistics.median(times[args.warmup:]) * 1000
    print(json.dumps({"impl": "pytorch-python", "torch": torch.__version__, "threads": args.threads,
                      "steps": args.steps, "ms_per_step": round(ms, 2),
                      "tok_per_s": round(batch * steps / (ms / 1000)), "last_loss": round(losses[-1], 4),
                      "last20_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4)}))


if __name__ == "__main__":
    main()
