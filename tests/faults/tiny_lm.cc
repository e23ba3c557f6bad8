#include "faults/tiny_lm.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "faults/job.h"
#include "support/corpus.h"

namespace distrnn::testing {
namespace {

std::string Mpiexec() {
  const char* env = std::getenv("DISTRNN_MPIEXEC");
  return env != nullptr ? env : "mpiexec";
}

}  // namespace

TinyLm::TinyLm(const TempDir& dir) : dir_(dir) {
  WritePtbCorpus(dir_, TinyLmCorpus, 300, 40);
}

std::string TinyLm::Flags(const std::string& run_dir) const {
  return "--task=ptb_lm --data_dir=" + dir_.Join("data") + " --run_dir=" + run_dir +
         " --hidden_size=32 --num_layers=2 --dropout=0.2 --batch_size=6 --num_steps=10 --eval_batch_size=2"
         " --threads=1 --log_every=1 --max_epochs=2 --checkpoint_every_steps=3 --keep_checkpoints=2"
         " --collective_timeout_s=20";
}

std::string TinyLm::Command(int ranks, const std::string& run_dir, const std::string& extra) const {
  const std::string args = " train " + Flags(run_dir) + " " + extra;
  if (ranks == 1) return "exec " + DistrnnBinary() + args + " --comm=local";
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 exec " + Mpiexec() + " -n " +
         std::to_string(ranks) + " --oversubscribe " + DistrnnBinary() + args + " --comm=mpi";
}

std::string TinyLm::WriteFlagfile(const std::string& name, const std::string& run_dir) const {
  std::string text;
  const std::string flags = Flags(run_dir);
  for (size_t start = 0; start < flags.size();) {
    size_t end = flags.find(' ', start);
    if (end == std::string::npos) end = flags.size();
    if (end > start) text += flags.substr(start, end - start) + "\n";
    start = end + 1;
  }
  return dir_.WriteFile(name, text);
}

double TinyLm::ReferenceValidLoss(int ranks) {
  static std::map<int, double> cache;
  static TempDir dir;  // removed at exit
  static TinyLm lm(dir);
  if (cache.count(ranks)) return cache.at(ranks);
  const std::string run = dir.Join("reference_" + std::to_string(ranks));
  Job job(lm.Command(ranks, run));
  if (!job.Wait(120) || job.exit_code() != 0) {
    throw std::runtime_error("the reference run on " + std::to_string(ranks) + " ranks failed:\n" + job.output());
  }
  const std::optional<double> loss = FinalValidLoss(run);
  if (!loss) throw std::runtime_error("the reference run logged no validation loss");
  cache[ranks] = *loss;
  return *loss;
}

std::vector<std::string> MetricsRecords(const std::string& run_dir, const std::string& type) {
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_object() && record.value("type", "") == type) out.push_back(line);
  }
  return out;
}

std::optional<double> FinalValidLoss(const std::string& run_dir) {
  const std::vector<std::string> valid = MetricsRecords(run_dir, "valid");
  if (valid.empty()) return std::nullopt;
  return nlohmann::json::parse(valid.back()).at("valid_loss").get<double>();
}

std::string LatestName(const std::string& run_dir) {
  std::ifstream in(run_dir + "/latest");
  std::string name;
  in >> name;
  return name;
}

std::vector<std::string> FilesMatching(const std::string& dir, const std::string& prefix, const std::string& infix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.compare(0, prefix.size(), prefix) == 0 && name.find(infix) != std::string::npos) out.push_back(name);
  }
  return out;
}

int Count(const std::string& haystack, const std::string& text) {
  int n = 0;
  for (size_t at = haystack.find(text); at != std::string::npos; at = haystack.find(text, at + text.size())) ++n;
  return n;
}

}  // namespace distrnn::testing
