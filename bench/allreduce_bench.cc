// All-reduce bandwidth of the communicator in use (nccl-tests style): for each size,
// checks the result against the closed form first, then times `iters` all-reduces and
// reports the slowest rank's time, algbw = bytes / time and busbw = algbw * 2(n-1)/n.
//
//   mpirun -np 2 build/bench/allreduce_bench [--min_bytes=4096 --max_bytes=67108864 --iters=20]
// Prints a table (rank 0) and writes bench/results/allreduce_<world>.json.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "comm/communicator_factory.h"
#include "common/status_macros.h"

ABSL_FLAG(int64_t, min_bytes, 4096, "Smallest message in bytes.");
ABSL_FLAG(int64_t, max_bytes, int64_t{64} << 20, "Largest message in bytes.");
ABSL_FLAG(int32_t, iters, 20, "Timed all-reduces per size.");
ABSL_FLAG(std::string, out, "bench/results", "Directory for the JSON result.");

namespace {

absl::Status Run() {
  using namespace distrnn;  // NOLINT: bench main
  ASSIGN_OR_RETURN(std::unique_ptr<comm::Communicator> c, comm::CreateCommunicator(comm::CommKind::kAuto));
  const int n = c->world_size();
  nlohmann::json rows = nlohmann::json::array();
  if (c->is_root()) std::printf("%12s %12s %12s %12s\n", "bytes", "time_us", "algbw_GB/s", "busbw_GB/s");
  for (int64_t bytes = absl::GetFlag(FLAGS_min_bytes); bytes <= absl::GetFlag(FLAGS_max_bytes); bytes *= 4) {
    const int64_t count = bytes / 4;
    at::Tensor t = at::full({count}, static_cast<float>(c->rank() + 1));
    RETURN_IF_ERROR(c->AllReduce(t, comm::ReduceOp::kSum));
    const float expected = n * (n + 1) / 2.0f;  // validate, then time
    if (!at::all(t == expected).item<bool>()) {
      return absl::InternalError(absl::StrCat("wrong all-reduce result at ", bytes, " bytes"));
    }
    RETURN_IF_ERROR(c->Barrier());
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < absl::GetFlag(FLAGS_iters); ++i) RETURN_IF_ERROR(c->AllReduce(t, comm::ReduceOp::kSum));
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
                absl::GetFlag(FLAGS_iters);
    ASSIGN_OR_RETURN(us, comm::AllReduceScalar(*c, us, comm::ReduceOp::kMax));
    const double algbw = static_cast<double>(bytes) / (us * 1e3);
    const double busbw = algbw * 2.0 * (n - 1) / n;
    if (c->is_root()) std::printf("%12lld %12.1f %12.3f %12.3f\n", static_cast<long long>(bytes), us, algbw, busbw);
    rows.push_back({{"bytes", bytes}, {"time_us", us}, {"algbw_GBps", algbw}, {"busbw_GBps", busbw}});
  }
  if (c->is_root()) {
    std::filesystem::create_directories(absl::GetFlag(FLAGS_out));
    std::ofstream(absl::GetFlag(FLAGS_out) + "/allreduce_" + std::to_string(n) + ".json")
        << nlohmann::json{{"bench", "allreduce"}, {"world_size", n}, {"backend", c->backend()}, {"rows", rows}}.dump(2)
        << "\n";
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::Status status = Run();
  if (!status.ok()) {
    std::fprintf(stderr, "allreduce_bench: error: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
