// All-reduce bandwidth of the communicator in use (nccl-tests style): for each size,
// checks the result against the closed form first, then times `iters` all-reduces and
// reports the slowest rank's time, algbw = bytes / time and busbw = algbw * 2(n-1)/n.
//
//   mpirun -np 2 build/bench/allreduce_bench [--min_bytes=4096 --max_bytes=67108864 --iters=20]
//   mpirun -np 8 build/bench/allreduce_bench --device=cuda      # NCCL, one GPU per rank
//
// - CPU (MPI): wall-clock time of, in the same run, raw MPI_Allreduce (MPI_IN_PLACE on
//   the same buffer: the reference), the communicator's blocking AllReduce, the
//   GradientReducer over one parameter of that size (what training pays: the 1/world
//   scaling of the bucket and its all-reduce), and the asynchronous interface
//   (AllReduceAsync + Wait). The methods alternate over --rounds rounds of `iters` calls
//   each and the median round is kept, so drift of this VM's speed hits all of them alike.
//   busbw of the communicator and the reducer is reported as a fraction of raw MPI's.
// - CUDA (NCCL, --device=auto with a visible GPU, or --device=cuda): the GPU of each
//   rank is cuda:(local rank % visible devices); time between CUDA events recorded on
//   the compute stream around `iters` all-reduces (each ordered on NCCL's stream and
//   waited on by the compute stream), after a warm-up.
// Prints a table (rank 0) and writes bench/results/allreduce_<backend>_<world>.json.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <mpi.h>
#include <nlohmann/json.hpp>

#if DISTRNN_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "comm/communicator_factory.h"
#include "comm/gradient_reducer.h"
#include "comm/nccl_api.h"
#include "comm/nccl_communicator.h"
#include "common/device.h"
#include "common/status_macros.h"

ABSL_FLAG(int64_t, min_bytes, 4096, "Smallest message in bytes.");
ABSL_FLAG(int64_t, max_bytes, int64_t{64} << 20, "Largest message in bytes.");
ABSL_FLAG(int32_t, iters, 20, "Timed all-reduces per size.");
ABSL_FLAG(int32_t, warmup, 5, "Untimed all-reduces per size before timing.");
ABSL_FLAG(int32_t, rounds, 5, "CPU: rounds alternating the methods; the median round is kept.");
ABSL_FLAG(std::string, device, "auto", "auto (CUDA + NCCL when a GPU is visible), cpu (MPI) or cuda (NCCL).");
ABSL_FLAG(std::string, out, "bench/results", "Directory for the JSON result.");

namespace {

using namespace distrnn;  // NOLINT: bench main

// Microseconds per all-reduce of `t`: `run` issues one (blocking from the caller's view).
template <typename Fn>
absl::StatusOr<double> TimeHost(int iters, Fn&& run) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) RETURN_IF_ERROR(run());
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / iters;
}

#if DISTRNN_WITH_CUDA
// CUDA events on the compute stream around `iters` collectives (nccl-tests' method).
template <typename Fn>
absl::StatusOr<double> TimeDevice(int iters, Fn&& run) {
  at::cuda::CUDAEvent start(cudaEventDefault), end(cudaEventDefault);
  const c10::cuda::CUDAStream stream = c10::cuda::getCurrentCUDAStream();
  start.record(stream);
  for (int i = 0; i < iters; ++i) RETURN_IF_ERROR(run());
  end.record(stream);
  end.synchronize();
  return 1000.0 * start.elapsed_time(end) / iters;
}
#endif

absl::Status Run() {
  ASSIGN_OR_RETURN(const common::DeviceKind kind, common::ParseDeviceKind(absl::GetFlag(FLAGS_device)));
  ASSIGN_OR_RETURN(std::unique_ptr<comm::Communicator> c, comm::CreateCommunicator(comm::CommKind::kAuto));
  const common::DevicePlacement where{c->rank(), c->local_rank(), c->local_size(), common::VisibleCudaDevices(),
                                      common::HostName()};
  ASSIGN_OR_RETURN(const c10::Device device, common::SelectDevice(kind, where, /*allow_shared_gpu=*/false));
  RETURN_IF_ERROR(common::ActivateDevice(device));
  if (device.is_cuda()) {
#if DISTRNN_WITH_CUDA
    if (c->world_size() == 1) {
      ASSIGN_OR_RETURN(c, comm::CreateCommunicator(comm::CommKind::kMpi));  // NCCL bootstraps over MPI
    }
    comm::NcclOptions options;
    options.collective_timeout_s = 120;
    ASSIGN_OR_RETURN(c, comm::CreateNcclCommunicator(std::move(c), device.index(), options));
#else
    return absl::FailedPreconditionError("built without CUDA");
#endif
  }
  const int n = c->world_size();
  const int iters = absl::GetFlag(FLAGS_iters), warmup = absl::GetFlag(FLAGS_warmup);
  nlohmann::json rows = nlohmann::json::array();
  if (c->is_root()) {
    std::printf("# backend %s, %d ranks, device %s (%s), %s\n", c->backend(), n, device.str().c_str(),
                common::DeviceName(device).c_str(), comm::DescribeNccl().c_str());
    std::printf("%12s %12s %12s %12s %14s %14s %14s\n", "bytes", "time_us", "algbw_GB/s", "busbw_GB/s",
                device.is_cuda() ? "" : "raw_MPI_busbw", device.is_cuda() ? "" : "ours/raw", device.is_cuda() ? "" : "reducer/raw");
  }
  for (int64_t bytes = absl::GetFlag(FLAGS_min_bytes); bytes <= absl::GetFlag(FLAGS_max_bytes); bytes *= 4) {
    const int64_t count = bytes / 4;
    at::Tensor t = at::full({count}, static_cast<float>(c->rank() + 1), at::TensorOptions().device(device));
    RETURN_IF_ERROR(c->AllReduce(t, comm::ReduceOp::kSum));
    const float expected = n * (n + 1) / 2.0f;  // validate, then time
    if (!at::all(t == expected).item<bool>()) {
      return absl::InternalError(absl::StrCat("wrong all-reduce result at ", bytes, " bytes"));
    }
    auto blocking = [&] { return c->AllReduce(t, comm::ReduceOp::kSum); };
    auto async = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::unique_ptr<comm::Work> work, c->AllReduceAsync(t, comm::ReduceOp::kSum));
      return work->Wait();
    };
    for (int i = 0; i < warmup; ++i) RETURN_IF_ERROR(blocking());
    RETURN_IF_ERROR(c->Barrier());
    double us = 0.0, async_us = 0.0, raw_us = 0.0, reducer_us = 0.0;
    if (device.is_cuda()) {
#if DISTRNN_WITH_CUDA
      ASSIGN_OR_RETURN(us, TimeDevice(iters, blocking));
#endif
    } else {
      // Raw MPI on the same buffer; a GradientReducer whose one parameter's gradient is
      // a view into its bucket (the values grow by n each call: timing only).
      auto raw = [&]() -> absl::Status {
        const int rc = MPI_Allreduce(MPI_IN_PLACE, t.data_ptr<float>(), static_cast<int>(count), MPI_FLOAT, MPI_SUM,
                                     MPI_COMM_WORLD);
        return rc == MPI_SUCCESS ? absl::OkStatus() : absl::InternalError("MPI_Allreduce failed");
      };
      at::Tensor param = at::zeros({count});
      comm::GradientReducer reducer(*c, {param}, /*bucket_bytes=*/bytes);
      auto reduce = [&] { return reducer.AllReduceGradients(); };
      std::vector<double> rounds[4];
      for (int r = 0; r < absl::GetFlag(FLAGS_rounds); ++r) {
        const std::pair<int, std::function<absl::Status()>> methods[] = {
            {0, raw}, {1, blocking}, {2, reduce}, {3, async}};
        for (const auto& [m, run] : methods) {
          RETURN_IF_ERROR(c->Barrier());
          ASSIGN_OR_RETURN(double round_us, TimeHost(iters, run));
          ASSIGN_OR_RETURN(round_us, comm::AllReduceScalar(*c, round_us, comm::ReduceOp::kMax));
          rounds[m].push_back(round_us);
        }
      }
      auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
      };
      raw_us = median(rounds[0]);
      us = median(rounds[1]);
      reducer_us = median(rounds[2]);
      async_us = median(rounds[3]);
    }
    ASSIGN_OR_RETURN(us, comm::AllReduceScalar(*c, us, comm::ReduceOp::kMax));
    const double algbw = static_cast<double>(bytes) / (us * 1e3);
    const double busbw = algbw * 2.0 * (n - 1) / n;
    if (c->is_root()) {
      std::printf("%12lld %12.1f %12.3f %12.3f", static_cast<long long>(bytes), us, algbw, busbw);
      if (!device.is_cuda()) {
        std::printf(" %14.3f %14.2f %14.2f", busbw * us / raw_us, raw_us / us, raw_us / reducer_us);
      }
      std::printf("\n");
    }
    nlohmann::json row = {{"bytes", bytes}, {"time_us", us}, {"algbw_GBps", algbw}, {"busbw_GBps", busbw}};
    if (!device.is_cuda()) {
      row["async_time_us"] = async_us;
      row["raw_mpi_time_us"] = raw_us;
      row["reducer_time_us"] = reducer_us;
      row["raw_mpi_busbw_GBps"] = busbw * us / raw_us;
    }
    rows.push_back(row);
  }
  if (c->is_root()) {
    std::filesystem::create_directories(absl::GetFlag(FLAGS_out));
    std::ofstream(absl::GetFlag(FLAGS_out) + "/allreduce_" + c->backend() + "_" + std::to_string(n) + ".json")
        << nlohmann::json{{"bench", "allreduce"}, {"world_size", n}, {"backend", c->backend()},
                          {"device", device.str()}, {"device_name", common::DeviceName(device)},
                          {"nccl", comm::DescribeNccl()}, {"iters", iters}, {"rows", rows}}
               .dump(2)
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
