#!/usr/bin/env python3
"""The Python script a user would otherwise run: PyTorch's word_language_model recipe
(github.com/pytorch/examples, word_language_model: Corpus/Dictionary, batchify, get_batch,
repackage_hidden, RNNModel, NLLLoss over log_softmax, clip_grad_norm_, a manual SGD update),
set to Zaremba et al.'s small model: 2 x 200 LSTM, 20 steps, batch 20, init +-0.1 on every
parameter, lr 1, clip 5, and Zaremba's loss scale (summed over the 20 steps, averaged over
the batch: the recipe's mean loss x bptt).

One process:   python bench/reference/word_language_model.py --data ../shared/data/ptb --threads 2
DDP (gloo):    torchrun --nproc_per_node=2 bench/reference/word_language_model.py --data ... --threads 1
  Each rank trains its own columns of the global batch (as distrnn does), DDP averages
  the gradients during backward (its default 25 MiB buckets, the first 1 MiB).

Trains --steps steps of the first epoch and prints one JSON object (rank 0): tok/s and
ms/step as the median over 20-step intervals after the first (distrnn's progress records
are measured the same way), the whole run's tok/s, and the mean loss of the last 20 steps.
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


class Dictionary:
    def __init__(self):
        self.word2idx, self.idx2word = {}, []

    def add_word(self, word):
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]


def tokenize(path, dictionary):
    ids = []
    with open(path, encoding="utf8") as f:
        for line in f:
            ids.extend(dictionary.add_word(w) for w in line.split() + ["<eos>"])
    return torch.tensor(ids, dtype=torch.int64)


class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp, nhid, nlayers, dropout, init):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        for p in self.parameters():  # Zaremba: every parameter uniform in [-init, init]
            nn.init.uniform_(p, -init, init)

    def forward(self, x, hidden):
        output, hidden = self.rnn(self.drop(self.encoder(x)), hidden)
        decoded = self.decoder(self.drop(output)).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    return data.narrow(0, 0, nbatch * bsz).view(bsz, -1).t().contiguous()


def get_batch(source, i, bptt):
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


def repackage_hidden(h):
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/ptb")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--batch_size", type=int, default=20, help="global batch (all ranks)")
    ap.add_argument("--bptt", type=int, default=20)
    ap.add_argument("--nhid", type=int, default=200)
    ap.add_argument("--nlayers", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=1.0)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--init", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1111)
    ap.add_argument("--log_interval", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    ddp = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    rank, world = 0, 1
    if ddp:
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    if args.batch_size % world:
        raise SystemExit(f"batch_size {args.batch_size} is not divisible by {world} ranks")

    dictionary = Dictionary()
    train_ids = tokenize(os.path.join(args.data, "ptb.train.txt"), dictionary)
    local = args.batch_size // world
    train_data = batchify(train_ids, args.batch_size)[:, rank * local:(rank + 1) * local].contiguous()
    ntokens = len(dictionary.idx2word)

    model = RNNModel(ntokens, args.nhid, args.nhid, args.nlayers, args.dropout, args.init)
    net = nn.parallel.DistributedDataParallel(model) if ddp else model  # DDP broadcasts rank 0's
    criterion = nn.NLLLoss()

    net.train()
    hidden = None
    losses, interval_s = [], []
    start = interval_start = time.perf_counter()
    for step, i in enumerate(range(0, args.steps * args.bptt, args.bptt), start=1):
        data, targets = get_batch(train_data, i, args.bptt)
        if hidden is not None:
            hidden = repackage_hidden(hidden)
        net.zero_grad()
        output, hidden = net(data, hidden)
        loss = criterion(output, targets)
        (loss * args.bptt).backward()  # Zaremba's scale: sum over steps, mean over batch
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-args.lr)
        losses.append(loss.item())
        if step % args.log_interval == 0:
            now = time.perf_counter()
            interval_s.append(now - interval_start)
            interval_start = now
    total_s = time.perf_counter() - start

    if ddp:  # the mean over all ranks' columns, as distrnn logs it
        every = torch.tensor(losses, dtype=torch.float64)
        dist.all_reduce(every)
        losses = (every / world).tolist()
    if rank == 0:
        tokens_per_step = args.batch_size * args.bptt
        later = interval_s[1:] or interval_s
        ms = statistics.median(later) * 1000 / args.log_interval
        print(json.dumps({
            "impl": "pytorch word_language_model" + (f" + DDP(gloo) x {world}" if ddp else ""),
            "torch": torch.__version__, "ranks": world, "threads": args.threads, "steps": args.steps,
            "ms_per_step": round(ms, 2), "tok_per_s": round(tokens_per_step / (ms / 1000)),
            "whole_run_tok_per_s": round(tokens_per_step * args.steps / total_s),
            "last20_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4)}))
    if ddp:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
