// A small MPI program for the fault tests (fault_test.cc): every rank runs a loop of
// all-reduces and rank --fault_rank misbehaves at step 5 in the way --mode says:
//
//   ok      nobody misbehaves; exit 0
//   abort   logs the cause, then Communicator::Abort(3) (what main does on an error)
//   exit    logs, then _exit(4) without MPI_Finalize (a library calling exit())
//   crash   SIGKILL to itself (OOM killer, segfault): no last words
//   stall   logs, then sleeps 10 min; the peers' collective watchdog must end the job
//   return  logs, then leaves main with code 5 (MPI_Finalize while peers wait in a
//           collective): the watchdog must end the job
//
//   mpiexec -n 3 mpi_fault_main --mode=stall --collective_timeout_s=3
//
// --abort_backstop_s sets MpiOptions::abort_backstop_s (mpi_fault_main_hung_abort, whose
// MPI_Abort hangs, tests that backstop).
#include <signal.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "comm/mpi_communicator.h"
#include "common/logging.h"

namespace {

std::string FlagValue(int argc, char** argv, const char* name, const char* fallback) {
  const std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) return argv[i] + prefix.size();
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  using distrnn::common::LogLine;
  const std::string mode = FlagValue(argc, argv, "mode", "ok");
  const int fault_rank = std::atoi(FlagValue(argc, argv, "fault_rank", "1").c_str());
  distrnn::comm::MpiOptions options;
  options.collective_timeout_s = std::atof(FlagValue(argc, argv, "collective_timeout_s", "0").c_str());
  options.abort_backstop_s = std::atof(FlagValue(argc, argv, "abort_backstop_s", "10").c_str());
  auto created = distrnn::comm::MpiCommunicator::Create(options);
  if (!created.ok()) {
    std::fprintf(stderr, "MPI set-up failed: %s\n", std::string(created.status().message()).c_str());
    return 1;
  }
  std::unique_ptr<distrnn::comm::MpiCommunicator> comm = std::move(created).value();
  distrnn::common::SetLogRank(comm->rank(), comm->world_size());
  at::Tensor t = at::ones({1000}, at::kFloat);
  for (int step = 0; step < 20; ++step) {
    if (comm->rank() == fault_rank && step == 5) {
      const std::string where = absl::StrCat("simulated fault '", mode, "' at step ", step, " on host ", comm->host());
      if (mode == "abort") {
        LogLine("fault", absl::StrCat(where, ": cannot open data file /nonexistent/train.txt; aborting"));
        comm->Abort(3);
      } else if (mode == "exit") {
        LogLine("fault", absl::StrCat(where, ": exiting with code 4 without MPI_Finalize"));
        _exit(4);
      } else if (mode == "crash") {
        kill(getpid(), SIGKILL);
      } else if (mode == "stall") {
        LogLine("fault", absl::StrCat(where, ": stalling for 600 s"));
        std::this_thread::sleep_for(std::chrono::seconds(600));
      } else if (mode == "return") {
        LogLine("fault", absl::StrCat(where, ": returning 5 from main"));
        return 5;
      }
    }
    absl::Status status = comm->AllReduce(t, distrnn::comm::ReduceOp::kAverage);
    if (!status.ok()) {
      LogLine("fault", absl::StrCat("all-reduce failed: ", status.message()));
      comm->Abort(6);
    }
  }
  LogLine("fault", "finished all steps");
  return 0;
}
