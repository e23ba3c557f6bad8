// The pieces of the mutation fuzzer (fuzz_test.cc): a seeded generator, byte-level
// mutations aimed at region boundaries, format surgery that keeps a mutated file past its
// checksums (gzip re-compression, checkpoint CRC-32 re-stamping, zip-entry CRC repair),
// and running a case in a child process or the distrnn binary with a time limit.
//
// Every mutation appends what it did to a log string, so a failing case can be read and
// reproduced from its kind and case number alone (the generator is seeded per case).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace distrnn::fuzz {

// A SplitMix64 stream: the same numbers on every platform and compiler.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform in [0, n); n > 0.
  uint64_t Below(uint64_t n) { return Next() % n; }
  bool Chance(double p) { return static_cast<double>(Next() >> 11) * 0x1.0p-53 < p; }
  template <typename T>
  const T& Pick(const std::vector<T>& items) {
    return items[Below(items.size())];
  }

 private:
  uint64_t state_;
};

// The seed of case `index` of `kind` under `base_seed`: cases are independent, so any
// one can be rerun alone.
uint64_t CaseSeed(uint64_t base_seed, const std::string& kind, int64_t index);

// ---- byte-level mutations ----------------------------------------------------------------

// Offsets where the structure of a text changes: 0, the end, line starts and token edges.
std::vector<size_t> TextBoundaries(const std::string& text);

// 1-3 of: bit flips, an interesting byte, truncation at (or next to) a boundary, insertion
// of random or hostile bytes (invalid UTF-8, NUL, CR, huge numbers, nan/inf), deletion,
// duplication of a range, a number replaced by a huge/negative/non-finite one. `log`
// gets a description of each step.
std::string MutateBytes(std::string data, const std::vector<size_t>& boundaries, Rng& rng, std::string& log);

// Replaces one run of decimal digits (with its sign and fraction) by a hostile number.
std::string MutateNumber(std::string data, Rng& rng, std::string& log);

// ---- gzip -------------------------------------------------------------------------------

// A deterministic gzip member (mtime 0) of `data`.
std::string Gzip(const std::string& data);
// Header end (10), start of the CRC-32 and of the length in the trailer, end.
std::vector<size_t> GzipBoundaries(size_t size);

// ---- checkpoints ------------------------------------------------------------------------

struct CheckpointParts {
  nlohmann::json header;  // line 2 parsed: payload_bytes, crc32, meta_crc32, meta
  std::string payload;
};
// Splits a valid checkpoint (train/checkpoint.h); nullopt if it is not one.
std::optional<CheckpointParts> SplitCheckpoint(const std::string& bytes);
// Line 1, `header` as given (no checksum touched), payload.
std::string JoinCheckpoint(const nlohmann::json& header, const std::string& payload);
// A checkpoint whose payload_bytes, crc32 and meta_crc32 are right for `meta` and
// `payload`: the reader's checks pass and what is behind them is exercised.
std::string StampCheckpoint(const nlohmann::json& meta, const std::string& payload);
// Offsets of line 1's end, the header's end and the payload's zip records.
std::vector<size_t> CheckpointBoundaries(const std::string& bytes);

// A mutation of a valid checkpoint, in one of several modes: raw bytes (refused by the
// checksums), wrong types / missing / extra fields in the metadata (re-stamped), header
// fields, payload bytes and zip record fields (re-stamped), and data of a zip entry with
// the entry's own CRC-32 repaired (reaches the pickle and the tensor values, e.g. NaN).
std::string MutateCheckpoint(const std::string& bytes, Rng& rng, std::string& log);

// Zip records of a torch archive.
struct ZipEntry {
  std::string name;
  size_t local_header = 0;    // offset of "PK\3\4"
  size_t data = 0;            // offset of the entry's data
  size_t size = 0;            // stored size (torch stores entries uncompressed)
  size_t central_header = 0;  // offset of its "PK\1\2" record
  int method = 0;
};
std::vector<ZipEntry> ListZipEntries(const std::string& zip);

// ---- processes ----------------------------------------------------------------------------

struct Outcome {
  int exit_code = -1;      // when the process exited
  int signal = 0;          // when a signal ended it
  bool timed_out = false;  // killed after the time limit
  double seconds = 0.0;
  std::string out, err;
};
// `argv` with stdin from /dev/null, killed (SIGKILL, whole process group) after `timeout_s`.
Outcome RunProcess(const std::vector<std::string>& argv, double timeout_s);
// body() in a forked child (its return value is the exit code), same limits and capture.
Outcome RunInChild(const std::function<int()>& body, double timeout_s);

// nullopt if `o` is a success (exit 0) or a clean error: exit 2, one line "distrnn: error:
// ..." last on stderr with only rank-tagged log lines ("[rank r/W] [tag] ...") before it
// (or, for flags Abseil cannot parse, only its "ERROR: ..." lines), nothing that looks like
// a crash or a trace anywhere. Otherwise what is wrong.
// Outcomes that are clean for some inputs though not exit 2.
struct Allowed {
  // Exit 3 with one "distrnn: error: non-finite ..." line: --on_nonfinite=stop ending a run
  // that diverged (a flagfile's --lr=1e30, a checkpoint's finite but extreme weights).
  bool nonfinite_stop = false;
  // Exit 1 with one error line naming an allocation failure: a flagfile that asks for more
  // memory than the process may use (--batch_size=123456789) meets a fault of the machine.
  bool out_of_memory = false;
};
std::optional<std::string> CleanExitProblem(const Outcome& o, Allowed allowed = {});

// ---- files --------------------------------------------------------------------------------

std::string ReadFileOrDie(const std::string& path);
void WriteFileOrDie(const std::string& path, const std::string& contents);
// Recursive copy of a directory tree.
void CopyTree(const std::string& from, const std::string& to);

}  // namespace distrnn::fuzz
