// The run every fault test uses: a tiny word LM (2-layer LSTM, dropout, 39 steps per
// epoch, 2 epochs, a checkpoint every 3 steps, a progress line per step) on a generated
// PTB-like corpus, with 1 process or `mpiexec -n N`; and what the tests read back from a
// run directory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace distrnn::testing {

inline constexpr int64_t kTinyLmStepsPerEpoch = 39;  // 2400 tokens / 6 columns, windows of 10
inline constexpr int64_t kTinyLmSteps = 2 * kTinyLmStepsPerEpoch;

class TinyLm {
 public:
  // Writes the corpus under dir/data.
  explicit TinyLm(const TempDir& dir);

  // `ranks` == 1: the binary alone (--comm=local); else mpiexec -n ranks --oversubscribe
  // (and `exec` in front, so the job's pid is mpiexec's). `extra` flags come last.
  std::string Command(int ranks, const std::string& run_dir, const std::string& extra = "") const;
  // The same flags as a flagfile (for launch/mpirun.sh), written to dir/<name>.
  std::string WriteFlagfile(const std::string& name, const std::string& run_dir) const;
  // The final validation loss of an uninterrupted run on `ranks` ranks (run once per
  // world size and test binary, in the binary's own temporary directory).
  static double ReferenceValidLoss(int ranks);

 private:
  std::string Flags(const std::string& run_dir) const;
  const TempDir& dir_;
};

// The last "valid" record's valid_loss in <run_dir>/metrics.jsonl.
std::optional<double> FinalValidLoss(const std::string& run_dir);
// metrics.jsonl records of one type, as JSON text, in order.
std::vector<std::string> MetricsRecords(const std::string& run_dir, const std::string& type);
// The file `latest` names ("" if none), and the step checkpoints and temporary files left.
std::string LatestName(const std::string& run_dir);
std::vector<std::string> FilesMatching(const std::string& dir, const std::string& prefix, const std::string& infix);
// Occurrences of `text` in `haystack`.
int Count(const std::string& haystack, const std::string& text);

}  // namespace distrnn::testing
