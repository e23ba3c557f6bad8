// Checkpoints (format distrnn-checkpoint-v2): the complete training state in one file
// that can be verified before anything is loaded from it.
//
//   line 1   distrnn-checkpoint-v2
//   line 2   {"payload_bytes":N,"crc32":C,"meta_crc32":M,"meta":{...caller's metadata...}}
//   N bytes  a torch archive: "model" (module archive), optionally "optimizer"
//            (optimizer archive) and "tensors/<name>" (extra tensors: LM hidden state,
//            RNG state, ...)
//
// C is the CRC-32 of the payload, M the CRC-32 of the metadata as nlohmann::json::dump()
// writes it, so one flipped bit anywhere in the file is refused. The metadata sits in the
// header, so `head -2 file` shows it and ReadCheckpointMeta reads nothing else. Files are
// written atomically (temp file, fsync, rename, fsync of the directory): a crash leaves the
// old file or the new one, never half of one. Run-directory bookkeeping (step checkpoints,
// `latest`, best.pt) lives in train/checkpoint_dir.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn
namespace torch::optim {
class Optimizer;
}  // namespace torch::optim
namespace torch::serialize {
class InputArchive;
}  // namespace torch::serialize

namespace distrnn::train {

inline constexpr char kCheckpointFormat[] = "distrnn-checkpoint-v2";
// Longest header line a reader accepts (a vocabulary of a few million words fits).
inline constexpr int64_t kMaxCheckpointHeaderBytes = int64_t{256} << 20;

// What to write. The pointers are not owned and must outlive the call.
struct CheckpointContents {
  nlohmann::json meta;                            // an object (or null, written as {})
  torch::nn::Module* model = nullptr;             // required
  torch::optim::Optimizer* optimizer = nullptr;   // optional
  // Optional extra tensors; names are unique, non-empty, of [A-Za-z0-9_.-].
  std::vector<std::pair<std::string, at::Tensor>> tensors;
};

// The bytes of a checkpoint file. Serialize once and write the bytes to several files
// (CheckpointDirectory::SaveStepBytes / SaveBestBytes) or broadcast them.
absl::StatusOr<std::string> SerializeCheckpoint(const CheckpointContents& contents);

// SerializeCheckpoint + WriteFileAtomically.
absl::Status SaveCheckpoint(const std::string& path, const CheckpointContents& contents);
// Convenience for a model and (optional, may be null) optimizer.
absl::Status SaveCheckpoint(const std::string& path, const nlohmann::json& meta, torch::nn::Module& model,
                            torch::optim::Optimizer* optimizer);

// A checkpoint held in memory whose header, size and checksums have been verified and whose
// archive has been parsed. Move-only. Not thread-safe (torch archives are read through
// non-const calls).
class CheckpointReader {
 public:
  // NotFound for a missing file; InvalidArgument, naming the file, for one that is foreign,
  // truncated, corrupt or unreadable, or holds a NaN/Inf in any tensor (model, optimizer or
  // extra). A foreign or truncated file is refused from its header, before its payload is read.
  static absl::StatusOr<CheckpointReader> FromFile(const std::string& path);
  // `bytes` as SerializeCheckpoint returns them (e.g. received from rank 0); `name` stands
  // for the source in error messages.
  static absl::StatusOr<CheckpointReader> FromBytes(std::string bytes, std::string name);

  CheckpointReader(CheckpointReader&&) noexcept;
  CheckpointReader& operator=(CheckpointReader&&) noexcept;
  ~CheckpointReader();

  const nlohmann::json& meta() const { return meta_; }
  // The whole file, e.g. to broadcast it to the other ranks.
  const std::string& bytes() const { return bytes_; }
  const std::string& name() const { return name_; }
  bool has_optimizer() const { return has_optimizer_; }
  // Names of the extra tensors, sorted.
  const std::vector<std::string>& tensor_names() const { return tensor_names_; }

  // Copies the stored parameters and buffers into `model`'s existing tensors (any device,
  // values converted to the model's dtype). All or nothing: refuses, naming the tensor, a
  // tensor the model has and the checkpoint lacks (or the reverse), another shape, or a
  // NaN/Inf value, and then leaves `model` untouched.
  absl::Status LoadModel(torch::nn::Module& model) const;
  // Loads the optimizer state (onto the device of the optimizer's first parameter); an
  // error if the checkpoint has none or it belongs to another optimizer or model. Call
  // after LoadModel.
  absl::Status LoadOptimizer(torch::optim::Optimizer& optimizer) const;
  // An extra tensor, on the CPU; InvalidArgument if the checkpoint has no tensor `name`.
  absl::StatusOr<at::Tensor> Tensor(const std::string& name) const;

 private:
  CheckpointReader();

  std::string bytes_;
  std::string name_;
  size_t payload_offset_ = 0;
  nlohmann::json meta_;
  bool has_optimizer_ = false;
  std::vector<std::string> tensor_names_;
  std::unique_ptr<torch::serialize::InputArchive> archive_;  // the payload, on the CPU
};

// The metadata of a checkpoint, from its header alone: the payload is neither read nor
// verified, but a file shorter or longer than its header says is refused.
absl::StatusOr<nlohmann::json> ReadCheckpointMeta(const std::string& path);

// Convenience (generate, predict, --init_from): CheckpointReader::FromFile, LoadModel and,
// when `optimizer` is non-null, LoadOptimizer.
absl::Status LoadCheckpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer* optimizer);

// Writes `contents` to `path` atomically: a temp file in the same directory, write, fsync,
// rename, fsync of the directory. The temp file is removed on failure.
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents);

}  // namespace distrnn::train
