// One LSTM layer forward + backward over a window: ours (model/fused_lstm_layer.h) against
// libtorch's (at::lstm, oneDNN on the CPU), at the PTB and IMDB shapes. Validates (same
// output and weight gradient) before timing. Threads: --benchmark args after
// DISTRNN_BENCH_THREADS (default 1), logged.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <iostream>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include "model/fused_lstm_layer.h"

namespace {

struct Inputs {
  at::Tensor x, h0, c0, w_ih, w_hh, b_ih, b_hh, dy;
};

Inputs Make(int64_t steps, int64_t batch, int64_t hidden) {
  at::manual_seed(0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(hidden));
  auto weight = [&](int64_t rows, int64_t cols) {
    return at::rand({rows, cols}).sub_(0.5).mul_(2 * scale).requires_grad_();
  };
  Inputs in{at::randn({steps, batch, hidden}).requires_grad_(), at::zeros({batch, hidden}),
            at::zeros({batch, hidden}), weight(4 * hidden, hidden), weight(4 * hidden, hidden),
            weight(4 * hidden, 1).view({-1}), weight(4 * hidden, 1).view({-1}), at::randn({steps, batch, hidden})};
  in.b_ih = in.b_ih.detach().requires_grad_();
  in.b_hh = in.b_hh.detach().requires_grad_();
  return in;
}

at::Tensor Forward(const Inputs& in, bool ours) {
  if (ours) return std::get<0>(distrnn::model::FusedLstmLayer(in.x, in.h0, in.c0, in.w_ih, in.w_hh, in.b_ih, in.b_hh));
  return std::get<0>(at::lstm(in.x, {in.h0.unsqueeze(0), in.c0.unsqueeze(0)}, {in.w_ih, in.w_hh, in.b_ih, in.b_hh},
                              true, 1, 0.0, true, false, false));
}

void Run(benchmark::State& state, bool ours) {
  const Inputs in = Make(state.range(0), state.range(1), state.range(2));
  Forward(in, true).backward(in.dy);
  const at::Tensor ours_grad = in.w_hh.grad().clone();
  in.w_hh.grad().zero_();
  Forward(in, false).backward(in.dy);
  const at::Tensor ref_grad = in.w_hh.grad().clone();
  if ((ours_grad - ref_grad).abs().max().item<double>() > 1e-4 * (1.0 + ref_grad.abs().max().item<double>())) {
    state.SkipWithError("ours and libtorch's weight gradients differ");
    return;
  }
  for (auto _ : state) {
    Forward(in, ours).backward(in.dy);
    benchmark::DoNotOptimize(in.w_hh.grad().data_ptr());
  }
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(state.range(0) * state.range(1)),
                                               benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Ours(benchmark::State& state) { Run(state, true); }
void BM_Libtorch(benchmark::State& state) { Run(state, false); }

// {steps, batch, hidden}: PTB small (20 x 20, 200), its 2-rank share (batch 10), PTB medium
// (35 x 20, 650), IMDB large (300 x 16, 256).
#define SHAPES Args({20, 20, 200})->Args({20, 10, 200})->Args({35, 20, 650})->Args({300, 16, 256})
BENCHMARK(BM_Ours)->SHAPES->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Libtorch)->SHAPES->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  const char* threads = std::getenv("DISTRNN_BENCH_THREADS");
  at::set_num_threads(threads != nullptr ? std::atoi(threads) : 1);
  std::cout << "threads: " << at::get_num_threads() << "\n";
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
