// The LM decoder + cross entropy, forward and backward, fused chunk by chunk
// (model/fused_linear_cross_entropy.h) against full logits + cross entropy, at the PTB
// shapes: rows = num_steps x batch, features = hidden size, vocabulary 10,000.
// Validates (same loss and gradients) before timing.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "model/fused_linear_cross_entropy.h"

namespace {

struct Shapes {
  int64_t rows, features, vocab;
};

torch::Tensor Unfused(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, const torch::Tensor& t) {
  return torch::nn::functional::cross_entropy(torch::addmm(b, x, w.t()), t,
                                              torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
}

void Run(benchmark::State& state, bool fused) {
  const Shapes s{state.range(0), state.range(1), 10000};
  torch::manual_seed(0);
  torch::Tensor x = torch::randn({s.rows, s.features}).requires_grad_();
  torch::Tensor w = (0.1 * torch::randn({s.vocab, s.features})).requires_grad_();
  torch::Tensor b = torch::zeros({s.vocab}).requires_grad_();
  torch::Tensor t = torch::randint(s.vocab, {s.rows}, torch::kLong);
  const double a = distrnn::model::FusedLinearCrossEntropy(x, w, b, t).item<double>();
  const double r = Unfused(x, w, b, t).item<double>();
  if (std::abs(a - r) > 1e-4 * std::abs(r)) {
    state.SkipWithError("fused and unfused losses differ");
    return;
  }
  for (auto _ : state) {
    const int64_t chunk = state.range(2) < 0 ? distrnn::model::kAllRows : state.range(2);
    torch::Tensor loss = fused ? distrnn::model::FusedLinearCrossEntropy(x, w, b, t, chunk) : Unfused(x, w, b, t);
    loss.backward();
    benchmark::DoNotOptimize(w.grad().data_ptr());
  }
  state.counters["rows/s"] = benchmark::Counter(static_cast<double>(s.rows), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Fused(benchmark::State& state) { Run(state, true); }
void BM_Unfused(benchmark::State& state) { Run(state, false); }

// PTB small (20 x 20 rows, 200 features), medium (35 x 20, 650), large (35 x 20, 1500);
// the third argument is the fused path's chunk rows (0: the default size, -1: all rows at
// once, the default of LM training). 200 and 350 rows: the per-rank share on 2 ranks.
BENCHMARK(BM_Fused)
    ->ArgsProduct({{200, 400}, {200}, {-1, 0, 100}})
    ->ArgsProduct({{350, 700}, {650, 1500}, {-1, 0, 175}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Unfused)
    ->ArgsProduct({{200, 400}, {200}, {0}})
    ->ArgsProduct({{350, 700}, {650, 1500}, {0}})
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
